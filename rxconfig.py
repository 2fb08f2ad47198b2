"""Reflex configuration. The backend URL is baked into the built frontend: a placeholder origin
that `opsloop.serving` rewrites per request (one build for any port), or the real public URL
from `OPSLOOP_PUBLIC_URL` for a static export served elsewhere (Render's static site)."""

import os

import reflex as rx

PUBLIC_URL = os.environ.get("OPSLOOP_PUBLIC_URL") or "http://opsloop-origin.invalid"
ORIGINS = os.environ.get("WS_ALLOWED_ORIGINS") or "http://127.0.0.1:3000,http://localhost:3000"

config = rx.Config(
    app_name="opsloop",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    api_url=PUBLIC_URL,
    deploy_url=PUBLIC_URL,
    redis_url=os.environ.get("REDIS_URL") or None,
    # The state socket and the API behind it answer browsers from these origins only (CORS and
    # socket.io's origin check); the same list as /ws and /logs/stream.
    cors_allowed_origins=[o.strip().rstrip("/") for o in ORIGINS.split(",") if o.strip()],
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(appearance="light", accent_color="indigo", radius="medium"))],
    disable_plugins=[rx.plugins.SitemapPlugin],
)
