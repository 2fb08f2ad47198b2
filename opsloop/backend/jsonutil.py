"""JSON with orjson: fast, and it knows datetimes and UUIDs, which our rows are full of."""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def dumps_str(value: Any) -> str:
    return dumps(value).decode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def has_nul(value: Any) -> bool:
    """Whether a decoded JSON value holds a NUL character anywhere: PostgreSQL's text and jsonb
    cannot store one, so callers refuse it with a 400 instead of meeting a 500 from the insert."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False
