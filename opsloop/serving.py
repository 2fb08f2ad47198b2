"""Serving one dashboard build on any host and port.

Reflex bakes the backend's URL into one small bundle file (`assets/reflex-env-*.js`). We build
with a placeholder origin and rewrite it, per request, to the origin the browser used, so a single
build serves `opsloop dev` on :3000, the tests on their port, and any host behind a proxy. A
static export for a separate static site (Render) is built with the real URL instead
(`OPSLOOP_PUBLIC_URL`), and never goes through here.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

PLACEHOLDER_HOST = "opsloop-origin.invalid"
BUILD_DIR = Path(__file__).resolve().parents[1] / ".web" / "build" / "client"


class FrontendOrigin:
    """ASGI middleware: answer `/assets/reflex-env-*.js` with the placeholder origin replaced."""

    def __init__(self, app: ASGIApp, build_dir: Path = BUILD_DIR) -> None:
        self.app = app
        self.build_dir = build_dir

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/assets/reflex-env-") and path.endswith(".js") and "/.." not in path:
            file = self.build_dir / path.lstrip("/")
            if file.is_file():
                headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
                host = headers.get("x-forwarded-host") or headers.get("host", "127.0.0.1")
                scheme = headers.get("x-forwarded-proto") or scope.get("scheme", "http")
                ws = "wss" if scheme == "https" else "ws"
                body = (
                    file.read_text().replace(f"http://{PLACEHOLDER_HOST}", f"{scheme}://{host}").replace(f"ws://{PLACEHOLDER_HOST}", f"{ws}://{host}")
                )
                await Response(body, media_type="text/javascript", headers={"cache-control": "no-cache"})(scope, receive, send)
                return
        await self.app(scope, receive, send)
