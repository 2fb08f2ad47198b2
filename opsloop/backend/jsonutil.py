"""The JSON policy (its home is `opsloop.shared.jsonutil`, shared with the agents), plus
`storable`: a value checked and encoded alone as a jsonb parameter, so a batch that carries it
can never fail because of it."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from opsloop.shared.jsonutil import (
    ANSWER_DEPTH,
    MAX_DEPTH,
    JSONRejected,
    check,
    dumps,
    dumps_str,
    encode,
    encode_checked,
    has_nul,
    loads,
    loggable,
    parse,
)

__all__ = [
    "ANSWER_DEPTH",
    "MAX_DEPTH",
    "JSONRejected",
    "as_jsonb",
    "check",
    "dumps",
    "dumps_str",
    "encode",
    "encode_checked",
    "has_nul",
    "loads",
    "loggable",
    "parse",
    "storable",
]


def _as_is(text: Any) -> str:
    """The encoder psycopg calls for these parameters: the text was encoded by `encode_checked`."""
    return str(text)


def storable(value: Any, what: str = "value", max_depth: int = MAX_DEPTH) -> Jsonb | None:
    """A jsonb parameter encoded now, alone: the statement that carries it (perhaps with hundreds
    of others) only passes the text along. None stays SQL NULL."""
    if value is None:
        return None
    return as_jsonb(encode_checked(value, what, max_depth))


def as_jsonb(encoded: bytes) -> Jsonb:
    """Text the policy already encoded, as a jsonb parameter psycopg passes along untouched."""
    return Jsonb(encoded.decode(), dumps=_as_is)
