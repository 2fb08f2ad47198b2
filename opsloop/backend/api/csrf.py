"""Refuse cross-site writes and non-JSON bodies before any route runs (CSRF).

A browser sends ambient credentials (the session cookie, Basic credentials it cached after
`/docs`) with requests other sites make it send. Such a request that changes anything is refused
(403) when its `Origin` is neither this app's own (its Host) nor in WS_ALLOWED_ORIGINS, or when
it has no Origin but `Sec-Fetch-Site` says another site made it. Scripts and agents send neither
header and are unaffected.

JSON routes take only `Content-Type: application/json` (415 otherwise): an HTML form can send
only urlencoded, multipart or text/plain bodies, and `fetch` from another site cannot send JSON
without a CORS preflight, which only the allowed origins pass. The dashboard's login and logout
forms and Reflex's own endpoints (`/_…`) are forms, not JSON, and keep the cross-site check.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from opsloop.backend.api.deps import error
from opsloop.shared.http import is_json

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_PATHS = frozenset({"/auth/login", "/auth/logout"})
OTLP_TYPES = (b"application/x-protobuf",)


def same_origin(origin: str, host: str | None, allowed: frozenset[str]) -> bool:
    origin = origin.strip().lower().rstrip("/")
    if origin in allowed:
        return True
    scheme, sep, netloc = origin.partition("://")
    return bool(sep) and scheme in ("http", "https") and host is not None and netloc == host.strip().lower()


class CrossSiteGuard:
    def __init__(self, app: ASGIApp, allowed_origins: list[str]) -> None:
        self.app = app
        self.allowed = frozenset(o.lower().rstrip("/") for o in allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        origin = fetch_site = content_type = host = None
        has_body = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"sec-fetch-site":
                fetch_site = value.decode("latin-1").lower()
            elif name == b"content-type":
                content_type = value
            elif name == b"host":
                host = value.decode("latin-1")
            elif name == b"content-length":
                has_body = value.strip() not in (b"0", b"")
            elif name == b"transfer-encoding":
                has_body = True
        if origin is not None:
            cross = not same_origin(origin, host, self.allowed)
        else:
            cross = fetch_site in ("cross-site", "same-site")
        if cross:
            await error(403, "Cross-site request refused")(scope, receive, send)
            return
        path: str = scope["path"]
        if has_body and path not in FORM_PATHS and not path.startswith("/_"):
            if not is_json(content_type, OTLP_TYPES if path.startswith("/v1/") else ()):
                await error(415, "Content-Type must be application/json")(scope, receive, send)
                return
        await self.app(scope, receive, send)
