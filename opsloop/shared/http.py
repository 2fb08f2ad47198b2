"""Request-body checks every JSON route applies, in the app and in the agents: the body limit
(MAX_BODY_BYTES: 413 by Content-Length, or while a chunked body is read) and the JSON content type."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive


def too_large_message(limit: int) -> str:
    return f"request body too large (limit {limit} bytes)"


def declared_too_large(headers: list[tuple[bytes, bytes]], limit: int) -> bool:
    """True when the request announces a Content-Length over `limit`."""
    for name, value in headers:
        if name == b"content-length":
            return value.isdigit() and int(value) > limit
    return False


def counting(receive: Receive, limit: int) -> Receive:
    """`receive`, raising a 413 HTTPException once more than `limit` body bytes came in (a chunked
    body announces no length)."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise HTTPException(413, too_large_message(limit))
        return message

    return counted


JSON_TYPE = b"application/json"


def is_json(content_type: bytes | None, also: tuple[bytes, ...] = ()) -> bool:
    """`application/json`, with parameters or not (`; charset=utf-8`), any case."""
    if content_type is None:
        return False
    for wanted in (JSON_TYPE, *also):
        n = len(wanted)
        if content_type[:n].lower() == wanted and (len(content_type) == n or content_type[n : n + 1] in (b";", b" ")):
            return True
    return False
