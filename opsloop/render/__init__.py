"""Render as an opsloop plugin: its agent, monitor, routes, dashboard page and CLI (see `plugin.py`)."""
