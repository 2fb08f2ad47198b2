"""`opsloop render plan|apply` with no opsloop running: the same task, run in this process.

Why: the first deploy happens before any opsloop exists anywhere. With RENDER_API_TOKEN set and
no opsloop answering (or ``--local``), the CLI starts an opsloop runtime of its own for the
length of the command: the database (DATABASE_URL, else the embedded PostgreSQL under ``.data``,
as ``opsloop dev`` uses), migrations, the dispatcher and the Render agent. The apply is then
exactly what a running opsloop does: one ``render.apply`` task with an event per step, recorded
in that database (``opsloop dev`` shows it later).
"""

from __future__ import annotations

import asyncio
import os
import secrets as random_secrets
from collections.abc import Awaitable, Callable
from typing import Any

Confirm = Callable[[dict[str, Any]], Awaitable[bool]]


def reachable(url: str) -> bool:
    """Whether an opsloop answers at ``url`` (anything but a connection failure counts)."""
    import httpx

    try:
        httpx.get(url.rstrip("/") + "/health", timeout=3.0)
    except httpx.TransportError:
        return False
    return True


def run(path: str | None, secrets: dict[str, str], *, dry_run: bool, wait: bool, confirm: Confirm | None = None) -> tuple[dict[str, Any], int]:
    """(answer, HTTP-like status), shaped like ``POST /render/blueprint/apply``'s."""
    return asyncio.run(_run(path, secrets, dry_run=dry_run, wait=wait, confirm=confirm))


async def _run(path: str | None, secrets: dict[str, str], *, dry_run: bool, wait: bool, confirm: Confirm | None) -> tuple[dict[str, Any], int]:
    from opsloop.backend import db
    from opsloop.backend.config import get_settings
    from opsloop.backend.embedded_db import DEFAULT_DATA_DIR, stop_embedded
    from opsloop.backend.runtime import Runtime
    from opsloop.render import service
    from opsloop.render.errors import RenderFailure
    from opsloop.render.runtime import require

    if not get_settings().INTERNAL_KEY:  # seals the operator's values in this process's own task only
        os.environ["INTERNAL_KEY"] = random_secrets.token_hex(24)
        get_settings.cache_clear()
    ours = not get_settings().database_url and not (DEFAULT_DATA_DIR / "postmaster.pid").exists()
    rt: Runtime | None = None
    try:
        url = await asyncio.to_thread(db.database_url)
        await asyncio.to_thread(db.upgrade_database, url)
        rt = Runtime(dispatch=True)
        await rt.start()
        render = require(rt)
        plan = await service.plan_blueprint(render, path, secrets)
        if dry_run:
            return {"dryRun": True, "plan": plan}, 200
        if confirm is not None and not await confirm(plan):
            return {"dryRun": True, "plan": plan, "notApplied": True}, 200
        return {"dryRun": False, **await service.apply_blueprint(render, path, source="cli", secrets=secrets, wait=wait)}, 200
    except RenderFailure as exc:
        return exc.body(), exc.status
    finally:
        if rt is not None:
            await rt.stop()
        if ours:
            await asyncio.to_thread(stop_embedded, DEFAULT_DATA_DIR)
