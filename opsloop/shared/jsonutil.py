"""JSON in and out, and the one policy for JSON that enters opsloop.

orjson: fast, and it knows datetimes and UUIDs, which our rows are full of. Its limits shape the
policy: it *parses* 1,024 levels of nesting but *encodes* only 254, and it turns integers beyond
64 bits into floats without a word. A value that parses but cannot be encoded again used to
wedge every batch it travelled in (task creates, agent answers, log lines, stream frames). So:

- `parse` is the door for every JSON body, agent answer, stream frame and shipped log batch:
  at most `MAX_DEPTH` levels, integers within 64 bits, no NUL character (PostgreSQL's text and
  jsonb cannot store one); anything else is a `JSONRejected` (a 400) naming the path.
- `storable` (in `opsloop.backend.jsonutil`, as it makes a database parameter) checks a value
  made in Python (the dashboard's form, an agent's handler) the same way and encodes it *once,
  on its own*, so a batch that carries it can never fail because of it.
- `dumps` never fails on nesting: what cannot be encoded (a row stored before this policy) is
  answered with the deep part replaced by a marker, rather than a 500 or a dropped socket.

`MAX_DEPTH` holds for what clients send; an agent's answer may nest deeper (`ANSWER_DEPTH`), as an
agent usually wraps its input (the echo agent answers `{received: payload}`). Both leave room under
orjson's 254 for what wraps a stored value on its way out (a result inside `{output}` inside a
task row inside a frame is a handful more levels).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from opsloop.shared.errors import BadRequest

MAX_DEPTH = 64
ANSWER_DEPTH = 2 * MAX_DEPTH
INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # what orjson round-trips; beyond it integers became floats
SHOWN_DEPTH = 200  # output only: deeper parts of an old row are replaced by a marker
_LONG_DIGITS = re.compile(rb"\d{19}")  # -2**63 - 1 has 19 digits: a shorter number is always in range
NUL_ESCAPE = b"\\u0000"


class JSONRejected(BadRequest):
    """A JSON value opsloop will not take: malformed, nested too deep, an integer beyond 64 bits,
    or a NUL character. The message names where, never the value."""


def dumps(value: Any) -> bytes:
    """Encode for an answer, a frame or a log line; nesting past orjson's limit is replaced by a
    marker instead of failing (see the module docstring)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return orjson.dumps(_shown(value, 1), option=orjson.OPT_NON_STR_KEYS, default=str)


def dumps_str(value: Any) -> str:
    return dumps(value).decode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Trusted JSON (our own rows from PostgreSQL); untrusted JSON goes through `parse`."""
    return orjson.loads(data)


def parse(raw: bytes | bytearray | memoryview | str, what: str = "request body", max_depth: int = MAX_DEPTH) -> Any:
    """Untrusted JSON, held to the policy. The checks past the parse cost nothing for ordinary
    bodies: each runs only when a byte count shows it could fail."""
    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:  # past orjson's own limit (1,024 levels) too
        if "depth limit" in str(exc):
            raise JSONRejected(f"{what} is nested deeper than {max_depth} levels") from None
        raise JSONRejected(f"{what} is not valid JSON") from None
    if data.count(b"[") + data.count(b"{") > max_depth:
        path = _too_deep(value, max_depth)
        if path is not None:
            raise JSONRejected(f"{_where(what, path)} is nested deeper than {max_depth} levels")
    if NUL_ESCAPE in data:
        path = _nul_path(value)
        if path is not None:
            raise JSONRejected(f"{_where(what, path)} must not contain the NUL character (\\u0000)")
    if _LONG_DIGITS.search(data):
        _refuse_big_ints(data, what)
    return value


def check(value: Any, what: str = "value", max_depth: int = MAX_DEPTH) -> None:
    """The same policy for a value made in Python (nothing to count bytes of: every check walks)."""
    path = _too_deep(value, max_depth)
    if path is not None:
        raise JSONRejected(f"{_where(what, path)} is nested deeper than {max_depth} levels")
    path = _nul_path(value)
    if path is not None:
        raise JSONRejected(f"{_where(what, path)} must not contain the NUL character (\\u0000)")


def encode_checked(value: Any, what: str = "value", max_depth: int = MAX_DEPTH) -> bytes:
    """`check`, then `encode`."""
    check(value, what, max_depth)
    return encode(value, what)


def encode(value: Any, what: str = "value") -> bytes:
    """Encode a value `check` already passed; an integer beyond 64 bits is refused rather than
    stored as a float."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        if "Integer exceeds" in str(exc):
            raise JSONRejected(f"{what} holds an integer beyond 64 bits") from None
        raise JSONRejected(f"{what} cannot be stored as JSON: {exc}") from None


def loggable(value: Any) -> Any:
    """A log line's `data`, or a note in its place when it breaks the policy: a log line is never
    refused for its data, and never poisons the batch it is shipped in."""
    try:
        check(value, "data")
    except JSONRejected as exc:
        return {"unstorable": exc.message}
    return value


def has_nul(value: Any) -> bool:
    """Whether a decoded JSON value holds a NUL character anywhere."""
    return _nul_path(value) is not None


Path = list[str | int]


def _children(value: Any) -> list[tuple[str | int, Any]] | None:
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        return list(enumerate(value))
    return None


def _too_deep(value: Any, limit: int) -> Path | None:
    """The path to the first container deeper than `limit` (the top value is level 1), or None."""
    stack: list[tuple[Any, int, Path]] = [(value, 1, [])]
    while stack:
        node, depth, path = stack.pop()
        children = _children(node)
        if children is None:
            continue
        if depth > limit:
            return path
        for key, child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, [*path, key]))
    return None


def _nul_path(value: Any) -> Path | None:
    """The path to the first string (or key) holding NUL, or None. Called on values already known
    to be at most `MAX_DEPTH` deep, or in a raw body that spells the escape."""
    stack: list[tuple[Any, Path]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return path
            continue
        if isinstance(node, dict):
            for key, child in node.items():
                if isinstance(key, str) and "\x00" in key:
                    return [*path, key]
                stack.append((child, [*path, key]))
        elif isinstance(node, list):
            stack.extend((child, [*path, i]) for i, child in enumerate(node))
    return None


def _refuse_big_ints(data: bytes, what: str) -> None:
    """A second, exact parse (rare: only bodies with a run of 20 digits) that sees integers as the
    text spelled them, which orjson does not."""

    def exact_int(text: str) -> int:
        number = int(text)
        if not INT_MIN <= number <= INT_MAX:
            raise JSONRejected(f"{what} holds an integer beyond 64 bits ({len(text)} digits): send it as a string")
        return number

    json.loads(data, parse_int=exact_int)


def _where(what: str, path: Path) -> str:
    """Where in the value: a request body's fields by name (`payload.items[3]`), a batch's entries
    by index (`entry 3: message`), anything else after its name (`answer at items[3]`)."""
    if not path:
        return what
    if what != "request body":
        return f"{what} at {_dotted(path)}"
    if isinstance(path[0], int):
        head, rest = f"entry {path[0]}", path[1:]
        return head + (": " + _dotted(rest) if rest else "")
    return _dotted(path)


def _dotted(path: Path, shown: int = 4) -> str:
    """`a.b[3]`; a long path (a deep value) is cut after `shown` steps."""
    out = ""
    for part in path[:shown]:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out + ("…" if len(path) > shown else "")


def _shown(value: Any, depth: int) -> Any:
    """A copy that orjson can encode: containers past `SHOWN_DEPTH` and integers past 64 bits
    become marker strings."""
    if isinstance(value, dict | list) and depth > SHOWN_DEPTH:
        return f"(nested deeper than {SHOWN_DEPTH} levels: not shown)"
    if isinstance(value, dict):
        return {k: _shown(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v, depth + 1) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
        return str(value)
    return value
