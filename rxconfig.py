"""Reflex configuration. The backend URL is baked into the built frontend: a placeholder origin
that `opsloop.serving` rewrites per request (one build for any port), or the real public URL
from `OPSLOOP_PUBLIC_URL` for a static export served elsewhere (Render's static site)."""

import os

import reflex as rx

PUBLIC_URL = os.environ.get("OPSLOOP_PUBLIC_URL") or "http://opsloop-origin.invalid"

config = rx.Config(
    app_name="opsloop",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    api_url=PUBLIC_URL,
    deploy_url=PUBLIC_URL,
    redis_url=os.environ.get("REDIS_URL") or None,
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(appearance="light", accent_color="indigo", radius="medium"))],
    disable_plugins=[rx.plugins.SitemapPlugin],
)
