"""Reflex configuration. The backend URL is baked into the built frontend, so it comes from the
environment (`OPSLOOP_PUBLIC_URL`, set by `opsloop dev` and the tests for their port)."""

import os

import reflex as rx

PUBLIC_URL = os.environ.get("OPSLOOP_PUBLIC_URL", "http://127.0.0.1:3000")

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
