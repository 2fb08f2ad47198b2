"""The Render plugin: what Render adds to opsloop, through `opsloop.backend.plugin`'s hooks.

Cheap to import (the CLI parses arguments with it, without configuration): every hook imports
what it adds when it is called.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opsloop.backend.plugin import Host, NavItem, Page, PluginRuntime

if TYPE_CHECKING:
    from fastapi import APIRouter


class RenderPlugin:
    """Render services, deploys, env and render.yaml as tasks; the build-failure monitor."""

    name = "render"

    async def start(self, host: Host) -> PluginRuntime | None:
        from .runtime import start_render

        return await start_render(host)

    def routers(self) -> Sequence[APIRouter]:
        from .routes import router

        return (router,)

    def pages(self) -> Sequence[Page]:
        from .page import render_page
        from .state import RenderState

        on_load = (RenderState.load,)
        return (Page("/dashboard/render", render_page, "Render", on_load, NavItem("Render", "cloud")),)  # type: ignore[arg-type]  # mypy reads rx.event handlers as EventNamespace

    def add_commands(self, sub: argparse._SubParsersAction[argparse.ArgumentParser], url_help: str) -> None:
        from .cli import add_parser

        add_parser(sub, url_help)


plugin = RenderPlugin()
