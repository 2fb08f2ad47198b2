"""Security headers on every answer: pages, assets, API, errors, the hot routes.

The Content-Security-Policy allows scripts only from the app itself plus the exact inline scripts
of the built dashboard pages and of `/docs` (by their SHA-256, read once from the build and the
docs page), so an injected `<script>` or a `javascript:` URL never runs. Styles allow
'unsafe-inline': Radix and Emotion set style attributes and insert `<style>` tags at run time.
`connect-src 'self'` covers the state socket (ws/wss on the same origin). No framing at all.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsloop.serving import BUILD_DIR

INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
MARK = "opsloop.security_headers"


def inline_script_hashes(html: bytes) -> set[str]:
    return {"'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'" for body in INLINE_SCRIPT.findall(html) if body}


@functools.cache
def script_hashes(build_dir: Path = BUILD_DIR) -> tuple[str, ...]:
    """Hashes of every inline script in the built pages and the Swagger page (sorted, stable)."""
    from opsloop.backend.api.openapi import docs_page

    found = inline_script_hashes(bytes(docs_page("/openapi.json").body))
    if build_dir.is_dir():
        for page in build_dir.rglob("*.html"):
            found |= inline_script_hashes(page.read_bytes())
    return tuple(sorted(found))


def content_security_policy(build_dir: Path = BUILD_DIR) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self' " + " ".join(script_hashes(build_dir)),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


@functools.cache
def header_list(build_dir: Path = BUILD_DIR) -> tuple[tuple[bytes, bytes], ...]:
    return (
        (b"content-security-policy", content_security_policy(build_dir).encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    )


class SecurityHeaders:
    """ASGI middleware adding `header_list()` to every HTTP answer. Registered outermost (and again
    outside the dashboard's own outer middleware); the first one marks the scope, so headers are
    added once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or MARK in scope:
            await self.app(scope, receive, send)
            return
        scope[MARK] = True
        extra = header_list()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
