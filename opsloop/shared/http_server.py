"""Every HTTP server we run (app, dashboard, agents) goes through `run()`: uvicorn with bounded
request heads and a logging setup that rate-limits repeated errors.

uvicorn's httptools protocol has no limit on a request head: httptools joins a header's pieces
with `bytes +=`, so one 96 MB header blocked the event loop for 13 s, and a client that never
finishes its head holds the connection forever. `BoundedHttpToolsProtocol` counts the bytes of
the head as they arrive, refuses a head over `max_head_bytes` (431), more than `max_headers`
headers (431) or a URL over `max_url_bytes` (414), and closes a connection whose head is not
complete `head_timeout_s` after it opened or after its first byte (408). Once the head is
complete, a chunk costs one integer comparison more than uvicorn's own protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("opsloop.http")
# called directly rather than through super(): these run once per request
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_message_complete = HttpToolsProtocol.on_message_complete


@dataclass(frozen=True)
class HttpLimits:
    max_head_bytes: int = 65536
    max_headers: int = 100
    max_url_bytes: int = 8192
    head_timeout_s: float = 5.0
    keepalive_s: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HttpLimits:
        """From the OPSLOOP_HTTP_* keys (the app's `Settings` holds the same, typed)."""
        d = cls()
        return cls(
            max_head_bytes=int(env.get("OPSLOOP_HTTP_MAX_HEADER_BYTES") or d.max_head_bytes),
            max_headers=int(env.get("OPSLOOP_HTTP_MAX_HEADERS") or d.max_headers),
            max_url_bytes=int(env.get("OPSLOOP_HTTP_MAX_URL_BYTES") or d.max_url_bytes),
            head_timeout_s=float(env.get("OPSLOOP_HTTP_HEADER_TIMEOUT_S") or d.head_timeout_s),
            keepalive_s=float(env.get("OPSLOOP_HTTP_KEEPALIVE_S") or d.keepalive_s),
        )


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the status is on the protocol."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded, timed request heads (see the module doc)."""

    limits: HttpLimits = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # bytes of the current request head so far; -1 while a head is complete (body, response)
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, with the head counted before the parser sees it
        if self._head_bytes >= 0:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        if self._head_bytes > 0:  # a head is still incomplete after this chunk
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(431, f"request head over {self.limits.max_head_bytes} bytes")
            elif self._head_timer is None:
                self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._head_bytes = -1
        if self._head_timer is not None:
            self._cancel_head_timer()
        limits = self.limits
        if len(self.headers) > limits.max_headers:
            self._refusal = (431, f"more than {limits.max_headers} request headers")
            raise _Refused
        if len(self.url) > limits.max_url_bytes:
            self._refusal = (414, f"request target over {limits.max_url_bytes} bytes")
            raise _Refused
        _on_headers_complete(self)

    def on_message_complete(self) -> None:
        _on_message_complete(self)
        self._head_bytes = 0  # the next request's head starts here

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._head_bytes < 0:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a slow pipelined head: close after the answer in flight
        elif self._head_bytes > 0:
            self._refuse(408, f"request head not complete within {self.limits.head_timeout_s:g}s")
        else:  # connected and sent nothing
            self.transport.close()

    def _refuse(self, status: int, reason: str) -> None:
        """Answer `status` with `reason` and close: the rest of the request is never read."""
        log.warning("refused a request from %s: %s (HTTP %d)", self.client[0] if self.client else "?", reason, status)
        self._cancel_head_timer()
        body = reason.encode()
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: " + str(len(body)).encode() + b"\r\n",
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()


def protocol_class(limits: HttpLimits) -> type[BoundedHttpToolsProtocol]:
    """A protocol class holding `limits` (uvicorn instantiates the class per connection)."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})


def server_options(limits: HttpLimits, repeat_window_s: float) -> dict[str, Any]:
    """uvicorn keyword arguments every server of ours shares: bounded heads, keep-alive, logging."""
    from opsloop.shared.log_throttle import logging_config

    return {
        "http": protocol_class(limits),
        "timeout_keep_alive": limits.keepalive_s,
        "log_config": logging_config(repeat_window_s),
        "log_level": "warning",
        "access_log": False,
    }


def run(target: str, *, host: str, port: int, limits: HttpLimits, repeat_window_s: float, factory: bool = False, **options: Any) -> None:
    """Serve the ASGI app at `target` (an import string) until SIGINT/SIGTERM."""
    import uvicorn

    uvicorn.run(target, host=host, port=port, factory=factory, **{**server_options(limits, repeat_window_s), **options})
