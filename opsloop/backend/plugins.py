"""The installed plugins: the one list the runtime, the API app, the dashboard and the CLI iterate.

Plugins are named by import string (``module:attribute``), not imported here, so that the core
never imports a plugin (the import contracts check it): a plugin is loaded when a process asks
for the list, and the core sees it only through `opsloop.backend.plugin.Plugin`.
"""

from __future__ import annotations

import functools
import importlib

from opsloop.backend.plugin import Plugin

# In order: the dev tools' `render fake` joins the Render plugin's command group.
INSTALLED: tuple[str, ...] = ("opsloop.render.plugin:plugin", "opsloop.devtools.render_fake.plugin:plugin")


@functools.cache
def installed() -> tuple[Plugin, ...]:
    """Every installed plugin, loaded once per process, in `INSTALLED` order."""
    return tuple(_load(ref) for ref in INSTALLED)


def _load(ref: str) -> Plugin:
    module, _, attribute = ref.partition(":")
    plugin: Plugin = getattr(importlib.import_module(module), attribute)
    return plugin
