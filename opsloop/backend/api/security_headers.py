"""Security headers on every answer: pages, assets, API, errors, the hot routes.

The Content-Security-Policy allows scripts only from the app itself plus the exact inline scripts
of the built dashboard pages and of `/docs` (by their SHA-256, read once from the build and the
docs page), so an injected `<script>` or a `javascript:` URL never runs. Styles allow
'unsafe-inline': Radix and Emotion set style attributes and insert `<style>` tags at run time.
`connect-src 'self'` covers the state socket (ws/wss on the same origin). No framing at all.
A rebuild of the dashboard under a running server is picked up within a second (`Policy`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsloop.serving import BUILD_DIR

INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
MARK = "opsloop.security_headers"


def inline_script_hashes(html: bytes) -> set[str]:
    return {"'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'" for body in INLINE_SCRIPT.findall(html) if body}


@functools.cache
def docs_script_hashes() -> frozenset[str]:
    from opsloop.backend.api.openapi import docs_page

    return frozenset(inline_script_hashes(bytes(docs_page("/openapi.json").body)))


def script_hashes(build_dir: Path = BUILD_DIR) -> tuple[str, ...]:
    """Hashes of every inline script in the built pages and the Swagger page (sorted, stable)."""
    found = set(docs_script_hashes())
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


def _build_version(build_dir: Path) -> tuple[int, ...]:
    """Changes when the dashboard is rebuilt (the build stamp is written last, index.html early)."""
    version: list[int] = []
    for marker in (build_dir.parent / ".opsloop-stamp", build_dir / "index.html"):
        try:
            st = marker.stat()
        except OSError:
            version += [0, 0]
        else:
            version += [st.st_mtime_ns, st.st_size]
    return tuple(version)


class Policy:
    """The headers for the current build: a rebuild under a running server (`opsloop dev`, tests)
    brings new inline scripts, so the build is looked at again at most once per CHECK_S."""

    CHECK_S = 1.0

    def __init__(self, build_dir: Path = BUILD_DIR) -> None:
        self.build_dir = build_dir
        self._checked = float("-inf")
        self._version: tuple[int, ...] | None = None
        self._headers: tuple[tuple[bytes, bytes], ...] = ()

    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        now = time.monotonic()
        if now - self._checked >= self.CHECK_S:
            self._checked = now
            version = _build_version(self.build_dir)
            if version != self._version:
                self._version = version
                self._headers = (
                    (b"content-security-policy", content_security_policy(self.build_dir).encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
                )
        return self._headers


policy = Policy()


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
        extra = policy.headers()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
