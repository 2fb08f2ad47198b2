"""The Render monitor: repairs the known misconfigurations of watched static sites.

An APScheduler interval job (RENDER_MONITOR_INTERVAL_MS) in every instance with a token and a
RENDER_MONITOR_SERVICES list (ids or names). Per watched static site and tick:

1. Only one instance looks at a service at a time (a PostgreSQL advisory lock, tried, never
   waited for), and a failed deploy is handled once: ``render_fixes`` has a row per deploy.
2. A pending fix is settled first, from its task (which waits for its redeploy): the redeploy
   went live (``fixed``), or failed (``failed``: the task reverted the change and ended ``error``;
   the fix is never applied again); while the task runs, nothing else happens.
3. The latest deploy, if ``build_failed``, is diagnosed from its build log: missing root dir
   (``Service Root Directory "…" is missing.``), empty build command (``Empty build command;
   skipping build``), missing publish directory (``Publish directory X does not exist!``).
4. The fix sets the configured value (RENDER_STATIC_SITE_ROOT_DIR / _BUILD_COMMAND /
   _PUBLISH_PATH) of each field concerned, leaving out what is already in place and what was
   tried and did not help; it runs as a ``render.autofix`` task (patch + redeploy, each step an
   event), at most OPSLOOP_RENDER_FIX_MAX (3) per service per OPSLOOP_RENDER_FIX_WINDOW_S (1 h).
5. Anything else is left to a person, with one warn log line per failed deploy.

All state is in the database, so a restart (or another instance) carries on where it stopped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from opsloop.backend.config import get_settings
from opsloop.backend.plugin import Host

from . import fixes, tasks
from .client import RenderAPIError, RenderClient

log = logging.getLogger("opsloop.render.monitor")
ACTOR = "render-monitor"
_ID = re.compile(r"^(srv|crn)-[A-Za-z0-9]+$")

PROBLEMS: dict[str, re.Pattern[str]] = {
    "missing_root_dir": re.compile(r'Service Root Directory "(?P<value>[^"]*)" is missing'),
    "empty_build_command": re.compile(r"Empty build command; skipping build"),
    "missing_publish_dir": re.compile(r"Publish directory (?P<value>.+?) does not exist"),
}
# problem -> (field name, path in Render's service, settings key of the configured value)
FIELDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "missing_root_dir": ("rootDir", ("rootDir",), "RENDER_STATIC_SITE_ROOT_DIR"),
    "empty_build_command": ("buildCommand", ("serviceDetails", "buildCommand"), "RENDER_STATIC_SITE_BUILD_COMMAND"),
    "missing_publish_dir": ("publishPath", ("serviceDetails", "publishPath"), "RENDER_STATIC_SITE_PUBLISH_PATH"),
}


def diagnose(lines: Sequence[str]) -> list[str]:
    """The recognised problems of a build log, in the order they appear (each once)."""
    found: list[str] = []
    for line in lines:
        for name, pattern in PROBLEMS.items():
            if name not in found and pattern.search(line):
                found.append(name)
    return found


def _norm(field: str, value: Any) -> str:
    text = "" if value is None else str(value).strip()
    if field in ("rootDir", "publishPath"):
        return "/".join(p for p in text.split("/") if p not in ("", "."))
    return text


@dataclass(frozen=True)
class Change:
    field: str
    before: Any
    after: str

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "from": self.before, "to": self.after}


def plan_fix(
    service: dict[str, Any], problems: Sequence[str], configured: dict[str, str], failed: Sequence[dict[str, Any]]
) -> tuple[list[Change], list[str]]:
    """(changes to make, why each other problem's fix was left out)."""
    tried = {(c.get("field"), _norm(str(c.get("field")), c.get("to"))) for f in failed for c in f.get("changes") or []}
    changes: list[Change] = []
    skipped: list[str] = []
    for problem in problems:
        field, path, key = FIELDS[problem]
        current: Any = service
        for part in path:
            current = current.get(part) if isinstance(current, dict) else None
        wanted = configured[key]
        if _norm(field, current) == _norm(field, wanted):
            skipped.append(f"{field} is already {wanted!r} ({key})")
        elif (field, _norm(field, wanted)) in tried:
            skipped.append(f"setting {field} to {wanted!r} was tried and did not help")
        elif all(c.field != field for c in changes):
            changes.append(Change(field, current, wanted))
    return changes, skipped


def patch_of(changes: Sequence[Change]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for change in changes:
        if change.field == "rootDir":
            patch["rootDir"] = change.after
        else:
            patch.setdefault("serviceDetails", {})[change.field] = change.after
    return patch


class RenderMonitor:
    def __init__(self, rt: Host, client: RenderClient, *, max_fixes: int | None = None, window_s: float | None = None) -> None:
        self.rt = rt
        self.client = client
        self.settings = rt.settings
        self.refs = list(rt.settings.monitored_services)
        self.max_fixes = max_fixes if max_fixes is not None else get_settings().OPSLOOP_RENDER_FIX_MAX
        self.window = timedelta(seconds=window_s if window_s is not None else get_settings().OPSLOOP_RENDER_FIX_WINDOW_S)
        self._said: dict[str, str] = {}  # last problem reported per service (no repeat every tick)

    @property
    def configured(self) -> dict[str, str]:
        s = self.settings
        return {
            "RENDER_STATIC_SITE_ROOT_DIR": s.RENDER_STATIC_SITE_ROOT_DIR,
            "RENDER_STATIC_SITE_BUILD_COMMAND": s.RENDER_STATIC_SITE_BUILD_COMMAND,
            "RENDER_STATIC_SITE_PUBLISH_PATH": s.RENDER_STATIC_SITE_PUBLISH_PATH,
        }

    # ----- the job -------------------------------------------------------------------

    async def tick(self) -> dict[str, str]:
        """One pass over the watched services: what happened to each (for logs and tests)."""
        done: dict[str, str] = {}
        try:
            services = await self._watched()
        except RenderAPIError as exc:
            self._say("*", "warn", f"render monitor: cannot list the watched services: {exc}")
            return done
        for service in services:
            sid = str(service["id"])
            try:
                done[sid] = await self._locked(service)
            except Exception as exc:  # one service's trouble never stops the others
                log.exception("render monitor failed on %s", sid)
                self._say(sid, "warn", f"render monitor: cannot check {service.get('name')} ({sid}): {exc}")
                done[sid] = "error"
        return done

    async def _watched(self) -> list[dict[str, Any]]:
        ids = [r for r in self.refs if _ID.match(r)]
        names = [r for r in self.refs if not _ID.match(r)]
        found: dict[str, dict[str, Any]] = {}
        if names:
            for service in await self.client.list_services(name=names):
                found[str(service["id"])] = service
        for sid in ids:
            try:
                found[sid] = await self.client.get_service(sid)
            except RenderAPIError as exc:
                if exc.status != 404:
                    raise
                self._say(sid, "warn", f"render monitor: watched service {sid} does not exist on Render")
        present = {s.get("name") for s in found.values()}
        for name in names:
            if name in present:
                self._said.pop(f"name:{name}", None)
            else:
                self._say(f"name:{name}", "warn", f"render monitor: no Render service is named {name}")
        return [s for s in found.values() if s.get("type") == "static_site"]

    async def _locked(self, service: dict[str, Any]) -> str:
        """Check one service under a per-service advisory lock; 'busy' if another instance has it."""
        key = f"opsloop.render.monitor:{service['id']}"
        async with self.rt.pool.connection() as conn:
            got = await (await conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%(k)s, 0)) AS ok", {"k": key})).fetchone()
            if not got or not got["ok"]:
                return "busy"
            try:
                return await self._check(conn, service)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%(k)s, 0))", {"k": key})

    async def _check(self, conn: AsyncConnection[DictRow], service: dict[str, Any]) -> str:
        sid, name = str(service["id"]), str(service.get("name") or service["id"])
        for fix in await fixes.pending(conn, sid):
            state = await self._settle(conn, fix, name)
            if state != "settled":
                return state
        deploys, _ = await self.client.list_deploys(sid, limit=1)
        if not deploys:
            return "no deploys"
        latest = deploys[0]
        status, deploy_id = str(latest.get("status")), str(latest["id"])
        if status != "build_failed":
            self._said.pop(sid, None)
            return status
        if await fixes.for_deploy(conn, sid, deploy_id) is not None:
            return "handled"
        lines = await self.client.build_logs(sid, deploy_id)
        problems = diagnose(lines)
        base = {"serviceName": name, "problems": problems}
        if not problems:
            tail = [line for line in lines if line.strip() and not line.startswith("==> Build failed")][-3:]
            reason = "unrecognised build failure"
            await fixes.insert(conn, sid, deploy_id, "unrecognised", {**base, "reason": reason, "logTail": tail}, "left_to_person")
            self._warn(
                f"render monitor: deploy {deploy_id} of {name} failed for a reason it does not recognise; left to a person (last log line: {tail[-1] if tail else 'none'})",
                sid,
                deploy_id,
            )
            return "left_to_person"
        changes, skipped = plan_fix(service, problems, self.configured, await fixes.failed_fixes(conn, sid))
        problem = ",".join(problems)
        if not changes:
            reason = "; ".join(skipped) or "nothing to change"
            await fixes.insert(conn, sid, deploy_id, problem, {**base, "reason": reason}, "left_to_person")
            self._warn(
                f"render monitor: deploy {deploy_id} of {name} failed ({problem}) and no untried fix is left: {reason}; left to a person",
                sid,
                deploy_id,
            )
            return "left_to_person"
        since = datetime.now(UTC) - self.window
        count = await fixes.applied_since(conn, sid, since)
        if count >= self.max_fixes:
            reason = f"attempt cap reached: {count} fixes in the last {self.window.total_seconds():g}s (max {self.max_fixes})"
            await fixes.insert(conn, sid, deploy_id, problem, {**base, "reason": reason}, "left_to_person")
            self._warn(f"render monitor: deploy {deploy_id} of {name} failed ({problem}); {reason}; left to a person", sid, deploy_id)
            return "capped"
        return await self._apply(conn, service, deploy_id, problems, changes, skipped)

    async def _apply(
        self, conn: AsyncConnection[DictRow], service: dict[str, Any], deploy_id: str, problems: list[str], changes: list[Change], skipped: list[str]
    ) -> str:
        sid, name = str(service["id"]), str(service.get("name") or service["id"])
        patch = patch_of(changes)
        payload = {
            "serviceId": sid,
            "serviceName": name,
            "deployId": deploy_id,
            "problems": problems,
            "changes": [c.to_dict() for c in changes],
            "skipped": skipped,
            "patch": patch,
        }
        task = await tasks.create(
            self.rt,
            "render.autofix",
            payload,
            source="monitor",
            correlation_id=f"render:{sid}",
            idempotency_key=f"render.autofix:{sid}:{deploy_id}",
        )
        fix = {"serviceName": name, "problems": problems, "changes": payload["changes"], "patch": patch, "skipped": skipped}
        await fixes.insert(conn, sid, deploy_id, ",".join(problems), fix, "pending", task.id)
        fields = ", ".join(f"{c.field}={c.after!r}" for c in changes)
        self.rt.writer.info(
            f"render monitor: deploy {deploy_id} of {name} failed ({', '.join(problems)}); fixing {fields} and redeploying",
            {"serviceId": sid, "deployId": deploy_id},
            task_id=task.id,
            trace_id=task.trace_id,
            correlation_id=task.correlation_id,
        )
        return "fixing"

    async def _settle(self, conn: AsyncConnection[DictRow], fix: dict[str, Any], name: str) -> str:
        """Decide a pending fix from its task: 'settled', or 'fixing' while the task runs.

        The autofix task itself waits for its redeploy, and reverts the change when the redeploy
        fails too (its ``render.autofix.outcome`` event says which).
        """
        task_id = fix.get("task_id")
        if task_id is None:
            await fixes.settle(conn, fix["id"], "error", {"reason": "no autofix task was recorded"})
            return "settled"
        task, events = await tasks.get(self.rt, task_id)
        if task.status in tasks.ACTIVE:
            return "fixing"
        said = next((e.data for e in reversed(events) if e.kind == "render.autofix.outcome" and isinstance(e.data, dict)), None)
        ids = {"task_id": task_id, "trace_id": task.trace_id, "correlation_id": task.correlation_id}
        if said is None:
            message = str((task.error or {}).get("message") or task.status)
            await fixes.settle(conn, fix["id"], "error", {"reason": f"the autofix task ended {task.status}: {message}"})
            self._warn(f"render monitor: the fix for {name} could not be applied ({message}); left to a person", fix["service_id"], fix["deploy_id"])
            return "settled"
        redeploy_id, status = said.get("deployId"), said.get("status")
        if said.get("outcome") == "fixed":
            await fixes.settle(conn, fix["id"], "fixed", {"redeployId": redeploy_id, "redeployStatus": status})
            self.rt.writer.info(f"render monitor: {name} is {status} again after the fix (deploy {redeploy_id})", None, **ids)
            return "settled"
        reverted = bool(said.get("reverted"))
        await fixes.settle(conn, fix["id"], "failed", {"redeployId": redeploy_id, "redeployStatus": status, "reverted": reverted})
        undone = "the change was reverted" if reverted else "nothing could be reverted"
        self.rt.writer.warn(
            f"render monitor: the fix for {name} did not help (redeploy {redeploy_id} is {status}); {undone}; it will not be applied again",
            None,
            **ids,
        )
        return "settled"

    # ----- reporting -----------------------------------------------------------------

    def _warn(self, message: str, service_id: str, deploy_id: str | None) -> None:
        self.rt.writer.warn(message, {"serviceId": service_id, "deployId": deploy_id}, correlation_id=f"render:{service_id}")

    def _say(self, key: str, level: str, message: str) -> None:
        """Report a recurring condition once (again only when it changes)."""
        if self._said.get(key) == message:
            return
        self._said[key] = message
        self.rt.writer.log(level, message, None)
