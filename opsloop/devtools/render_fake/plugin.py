"""The local Render as a plugin of its own: it adds `opsloop render fake` to the Render plugin's
command group, so that the Render plugin never imports the dev tools (they import it).

It starts nothing in a runtime and adds no routes or pages.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opsloop.backend.plugin import Host, Page, PluginRuntime

if TYPE_CHECKING:
    from fastapi import APIRouter


class RenderFakeTool:
    """`opsloop render fake` (see `cli.py`)."""

    name = "render-fake"

    async def start(self, host: Host) -> PluginRuntime | None:
        return None

    def routers(self) -> Sequence[APIRouter]:
        return ()

    def pages(self) -> Sequence[Page]:
        return ()

    def add_commands(self, sub: argparse._SubParsersAction[argparse.ArgumentParser], url_help: str) -> None:
        from .cli import add_parser

        add_parser(sub)


plugin = RenderFakeTool()
