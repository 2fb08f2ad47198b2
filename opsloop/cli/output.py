"""How commands talk to people: one clear line for an error, never a traceback."""

from __future__ import annotations

import sys

from opsloop.backend.config import secret_keys


def redact(text: str) -> str:
    """Replace any configured secret value that slipped into a message."""
    import os

    for key in secret_keys():
        value = os.environ.get(key)
        if value and len(value) >= 4:
            text = text.replace(value, f"<{key}>")
    return text


def fail(exc: BaseException) -> int:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    sys.stderr.write(f"opsloop: error: {redact(message)}\n")
    return 1
