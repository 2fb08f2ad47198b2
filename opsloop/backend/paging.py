"""Keyset cursors: opaque to clients, validated on the way back in (a bad cursor is a 400)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from opsloop.backend import jsonutil
from opsloop.backend.errors import BadRequest


class BadCursor(BadRequest, ValueError):
    """A cursor the client made up or mangled: the API answers 400, never 500."""


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(jsonutil.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = jsonutil.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not valid") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise BadCursor("cursor is not valid")
    return values
