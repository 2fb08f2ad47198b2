"""Our uvicorn servers (bounded request heads, rate-limited repeated errors); their home is
`opsloop.shared.http_server` (the agents serve with it too). Here: the app's, from `Settings`."""

from __future__ import annotations

from typing import Any

from opsloop.backend.config import Settings, get_settings
from opsloop.shared import http_server as shared
from opsloop.shared.http_server import BoundedHttpToolsProtocol, HttpLimits, protocol_class

__all__ = ["BoundedHttpToolsProtocol", "HttpLimits", "limits_from_settings", "protocol_class", "run", "server_options"]


def limits_from_settings(settings: Settings | None = None) -> HttpLimits:
    s = settings or get_settings()
    return HttpLimits(
        max_head_bytes=s.OPSLOOP_HTTP_MAX_HEADER_BYTES,
        max_headers=s.OPSLOOP_HTTP_MAX_HEADERS,
        max_url_bytes=s.OPSLOOP_HTTP_MAX_URL_BYTES,
        head_timeout_s=s.OPSLOOP_HTTP_HEADER_TIMEOUT_S,
        keepalive_s=s.OPSLOOP_HTTP_KEEPALIVE_S,
    )


def server_options(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    return shared.server_options(limits_from_settings(settings), settings.OPSLOOP_LOG_REPEAT_WINDOW_S)


def run(target: str, *, host: str, port: int, factory: bool = False, **options: Any) -> None:
    """Serve the ASGI app at `target` (an import string) until SIGINT/SIGTERM."""
    settings = get_settings()
    shared.run(
        target,
        host=host,
        port=port,
        limits=limits_from_settings(settings),
        repeat_window_s=settings.OPSLOOP_LOG_REPEAT_WINDOW_S,
        factory=factory,
        **options,
    )
