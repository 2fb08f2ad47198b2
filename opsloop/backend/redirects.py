"""Where a login may send the browser next: same-origin relative paths only.

`next` comes from a link anyone can craft. Anything but a plain path (`/dashboard/tasks?x=1`) is
replaced by `/`: absolute URLs, `javascript:` (any case), protocol-relative `//host`, `/\\host`
(browsers read a backslash as a slash), control characters (browsers drop tabs and newlines, so
`/\\t/host` becomes `//host`), and the same tricks percent-encoded.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

MAX_LEN = 2048


def _plain_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith("//"):
        return False
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def safe_next(raw: str | None) -> str:
    """`raw` when it is a same-origin relative path, else `/`."""
    if not raw or len(raw) > MAX_LEN:
        return "/"
    if not _plain_path(raw) or not _plain_path(unquote(raw)):
        return "/"
    return raw
