"""The Render page: services with their latest deploy, deploy and env actions, render.yaml plan
and apply, the monitor's fixes and the latest Render tasks.

Reads go to the plugin in-process (``opsloop.render.service``), through its short TTL
cache so that many open tabs cost Render one call; writes are ``render.*`` tasks like from any
other entry point (source ``dashboard``). Every handler treats its arguments as untrusted (anyone
can send any event on the state socket): ids must be among the services shown, env keys valid.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import reflex as rx

from opsloop.backend.live.bus import LiveMessage
from opsloop.render import service as render
from opsloop.render.errors import RenderFailure
from opsloop.render.runtime import RenderRuntime, require
from opsloop.render.task_types import TASK_TYPES
from opsloop.state.access import runtime
from opsloop.state.display import stamp, task_row
from opsloop.state.live import watch
from opsloop.state.live_view import LiveFilter, LiveParams, LiveView

PAGE_SIZE = 20
TYPES = ("static_site", "web_service", "private_service", "background_worker", "cron_job")
MAX_ENV_TEXT = 20_000
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,255}$")


def _render_task(msg: LiveMessage) -> bool:
    return msg.kind == "task" and str(msg.row.get("type", "")) in TASK_TYPES


def _render() -> RenderRuntime:
    """This process's Render runtime (a RenderFailure 503 when Render is not configured)."""
    return require(runtime())


def parse_env_text(text: str) -> tuple[dict[str, str], str]:
    """``KEY=value`` lines (blank lines and ``#`` comments ignored): (env, error or "")."""
    if len(text) > MAX_ENV_TEXT:
        return {}, f"Too much text (at most {MAX_ENV_TEXT} characters)."
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            return {}, f"Line {number}: expected KEY=value."
        if "\x00" in value:
            return {}, f"Line {number}: the value cannot contain a NUL character."
        env[key] = value
    return env, ""


def replace_warning(current_keys: list[str], env: dict[str, str]) -> str:
    """What "Replace all variables" would delete, said before anything is sent."""
    gone = sorted(k for k in current_keys if k not in env)
    if not gone:
        return f"Replace all variables of this service by these {len(env)}?"
    shown = ", ".join(gone[:10]) + (f" and {len(gone) - 10} more" if len(gone) > 10 else "")
    return f"Replacing deletes {len(gone)} variable(s) not in the text: {shown}."


def _when(ts: str | None) -> str:
    return (ts or "")[:19].replace("T", " ")


def service_row(s: dict[str, Any], latest: dict[str, Any] | None) -> dict[str, str]:
    details = s.get("serviceDetails") or {}
    return {
        "id": str(s["id"]),
        "name": str(s.get("name") or ""),
        "type": str(s.get("type") or ""),
        "status": str((latest or {}).get("status") or "none"),
        "deploy_id": str((latest or {}).get("id") or ""),
        "updated": _when((latest or {}).get("finishedAt") or (latest or {}).get("updatedAt")),
        "url": str(details.get("url") or ""),
        "dashboard": str(s.get("dashboardUrl") or ""),
        "suspended": "suspended" if s.get("suspended") == "suspended" else "",
    }


def fix_row(r: dict[str, Any]) -> dict[str, str]:
    fix = r.get("fix") or {}
    changes = ", ".join(f"{c.get('field')} → {c.get('to')!r}" for c in fix.get("changes") or [])
    return {
        "id": str(r["id"]),
        "service": str(fix.get("serviceName") or r["service_id"]),
        "service_id": r["service_id"],
        "deploy_id": r.get("deploy_id") or "",
        "problem": r["problem"].replace("_", " ").replace(",", ", "),
        "action": changes or str(fix.get("reason") or ""),
        "outcome": r["outcome"],
        "task_id": str(r["task_id"]) if r.get("task_id") else "",
        "when": stamp(r["created_at"]),
    }


def plan_rows(plan: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for s in [*plan.get("resources", []), *plan.get("services", [])]:
        lines = []
        for c in s.get("changes", []):
            old, new = c.get("old"), c.get("new")
            lines.append(f"{c['field']}: {new}" if old is None else f"{c['field']}: {old} → {new}")
        rows.append(
            {
                "name": s["name"],
                "type": s["type"],
                "action": s["action"],
                "changes": "\n".join(lines) or "—",
                "warnings": "\n".join(s.get("warnings") or []),
            }
        )
    return rows


class RenderState(LiveView, rx.State):
    configured: rx.Field[bool] = rx.field(False)
    api: rx.Field[str] = rx.field("")
    monitor: rx.Field[str] = rx.field("")
    rows: rx.Field[list[dict[str, str]]] = rx.field(default_factory=list)
    page: rx.Field[int] = rx.field(1)
    total: rx.Field[int] = rx.field(0)
    type_filter: rx.Field[str] = rx.field("")
    loading: rx.Field[bool] = rx.field(False)
    busy: rx.Field[str] = rx.field("")
    error: rx.Field[str] = rx.field("")
    notice: rx.Field[str] = rx.field("")
    env_service: rx.Field[str] = rx.field("")
    env_name: rx.Field[str] = rx.field("")
    env_current: rx.Field[list[list[str]]] = rx.field(default_factory=list)
    env_text: rx.Field[str] = rx.field("")
    env_clear: rx.Field[bool] = rx.field(False)
    env_confirm: rx.Field[str] = rx.field("")  # set: "Replace all" waits for a second, explicit click
    plan: rx.Field[list[dict[str, str]]] = rx.field(default_factory=list)
    plan_notes: rx.Field[list[str]] = rx.field(default_factory=list)
    plan_noop: rx.Field[bool] = rx.field(False)
    plan_loaded: rx.Field[bool] = rx.field(False)
    applied: rx.Field[list[dict[str, str]]] = rx.field(default_factory=list)
    fixes: rx.Field[list[dict[str, str]]] = rx.field(default_factory=list)
    tasks: rx.Field[list[dict[str, str]]] = rx.field(default_factory=list)

    @rx.var
    def has_next(self) -> bool:
        return self.page * PAGE_SIZE < self.total

    @rx.var
    def page_label(self) -> str:
        if not self.total:
            return "no services"
        first = (self.page - 1) * PAGE_SIZE + 1
        return f"{first}–{min(self.total, self.page * PAGE_SIZE)} of {self.total}"

    # ----- loading ---------------------------------------------------------------------

    @rx.event
    async def load(self) -> AsyncIterator[None]:
        rt = runtime()
        rr = rt.plugin(RenderRuntime)
        self.configured = rr is not None
        self.error = self.notice = ""
        self.busy = ""
        self.page = 1
        wanted = self.router.url.query_parameters.get("type", "")
        self.type_filter = wanted if wanted in TYPES else ""
        if rr is None:
            return
        self.api = rr.base_url
        refs = rt.settings.monitored_services
        self.monitor = (
            f"watching {', '.join(refs)} every {rt.settings.RENDER_MONITOR_INTERVAL_MS / 1000:g}s"
            if refs
            else "off (RENDER_MONITOR_SERVICES is empty)"
        )
        self.loading = True
        yield
        await self._refresh(max_age=15.0)
        self.loading = False
        watch(self, {})

    async def _refresh(self, max_age: float = 15.0) -> None:
        rr = _render()
        try:
            services = await render.services_snapshot(rr, max_age=max_age)
            if self.type_filter:
                services = [s for s in services if s.get("type") == self.type_filter]
            services.sort(key=lambda s: str(s.get("name") or ""))
            self.total = len(services)
            if self.page > 1 and (self.page - 1) * PAGE_SIZE >= self.total:
                self.page = 1
            shown = services[(self.page - 1) * PAGE_SIZE : self.page * PAGE_SIZE]
            latest = await asyncio.gather(*(render.latest_deploy(rr, str(s["id"])) for s in shown))
            self.rows = [service_row(s, d) for s, d in zip(shown, latest, strict=True)]
        except RenderFailure as exc:
            self.error = f"Render: {exc.message}"
        await self._refresh_records()

    async def _refresh_records(self) -> None:
        rr = _render()
        self.fixes = [fix_row(r) for r in await render.recent_fixes(rr, 20)]
        self.tasks = [task_row(t.row()) for t in await render.recent_tasks(rr, 10)]

    def _known(self, service_id: Any) -> dict[str, str] | None:
        """The shown row of an id the browser sent (untrusted): None unless it is on this page."""
        if not isinstance(service_id, str):
            return None
        return next((r for r in self.rows if r["id"] == service_id), None)

    @rx.event
    async def refresh(self) -> None:
        if not self.configured:
            return
        self.error = ""
        _render().forget()
        await self._refresh(max_age=0)

    @rx.event
    async def set_type_filter(self, value: str) -> None:
        self.type_filter = value if value in TYPES else ""
        self.page = 1
        if self.configured:
            await self._refresh()

    @rx.event
    async def next_page(self) -> None:
        if self.configured and self.page * PAGE_SIZE < self.total:
            self.page += 1
            await self._refresh()

    @rx.event
    async def prev_page(self) -> None:
        if self.configured and self.page > 1:
            self.page -= 1
            await self._refresh()

    # ----- deploy ----------------------------------------------------------------------

    @rx.event
    async def deploy(self, service_id: str):
        row = self._known(service_id)
        if not self.configured or row is None or self.busy:
            return
        self.busy = row["id"]
        self.error = self.notice = ""
        yield
        try:
            out = await render.deploy(_render(), row["id"], False, source="dashboard")
            deploy = out.get("deploy") or {}
            self.notice = f"Deploy {deploy.get('id', '')} of {row['name']} started ({deploy.get('status', 'queued')})."
        except RenderFailure as exc:
            self.error = f"Deploy of {row['name']} failed: {exc.message}"
        self.busy = ""
        await self._refresh(max_age=0.5)

    # ----- env -------------------------------------------------------------------------

    @rx.event
    async def open_env(self, service_id: str) -> None:
        row = self._known(service_id)
        if not self.configured or row is None:
            return
        self.env_service, self.env_name = row["id"], row["name"]
        self.env_text, self.env_clear, self.env_confirm = "", False, ""
        await self._load_env()

    async def _load_env(self) -> None:
        try:
            env = await render.list_env(_render(), self.env_service)
            self.env_current = [[k, env[k]] for k in sorted(env)][:200]
        except RenderFailure as exc:
            self.env_current = []
            self.error = f"Env of {self.env_name}: {exc.message}"

    @rx.event
    def close_env(self) -> None:
        self.env_service = self.env_name = self.env_text = ""
        self.env_current = []

    @rx.event
    def set_env_text(self, value: str) -> None:
        self.env_text = str(value)[:MAX_ENV_TEXT]
        self.env_confirm = ""

    @rx.event
    def set_env_clear(self, value: bool) -> None:
        self.env_clear = value is True
        self.env_confirm = ""

    @rx.event
    def cancel_replace(self) -> None:
        self.env_confirm = ""

    @rx.event
    async def save_env(self):
        """Merge at once; "Replace all" first shows what it would delete (``confirm_replace`` does it)."""
        env, problem = parse_env_text(self.env_text)
        if self.env_clear and not problem and env:
            self.env_confirm = replace_warning([k for k, _ in self.env_current], env)
            return
        async for _ in self._save_env():
            yield

    @rx.event
    async def confirm_replace(self):
        if not self.env_confirm:
            return
        self.env_confirm = ""
        async for _ in self._save_env():
            yield

    async def _save_env(self):
        if not self.configured or not self.env_service or self.busy:
            return
        env, problem = parse_env_text(self.env_text)
        if problem or not env:
            self.error = problem or "Give at least one KEY=value line."
            return
        self.busy = "env"
        self.error = self.notice = ""
        yield
        try:
            out = await render.set_env(_render(), self.env_service, env, self.env_clear, source="dashboard")
            verb = "replaced by" if self.env_clear else "merged with"
            deployed = f"; deploy {out['deploy'].get('id')} started" if out.get("deploy") else ""
            self.notice = f"Env of {self.env_name} {verb} {len(env)} variable(s); {len(out['env'])} in all{deployed}."
            self.env_text, self.env_clear = "", False
            await self._load_env()
        except RenderFailure as exc:
            self.error = f"Env of {self.env_name} not changed: {exc.message}"
        self.busy = ""
        await self._refresh_records()

    # ----- blueprint -------------------------------------------------------------------

    @rx.event
    async def make_plan(self):
        if not self.configured or self.busy:
            return
        self.busy = "plan"
        self.error = self.notice = ""
        self.applied = []
        yield
        try:
            plan = await render.plan_blueprint(_render())
            self.plan = plan_rows(plan)
            missing = [f"{m}: sync: false value missing; apply it with `opsloop render apply --env-file F`" for m in plan.get("missing", [])]
            self.plan_notes = [*plan.get("skipped", []), *plan.get("warnings", []), *missing, *plan.get("blocked", [])]
            self.plan_noop = bool(plan.get("noop"))
            self.plan_loaded = True
        except RenderFailure as exc:
            self.error = f"Plan failed: {exc.message}"
        self.busy = ""

    @rx.event
    async def apply_plan(self):
        if not self.configured or self.busy or not self.plan_loaded or self.plan_noop:
            return
        self.busy = "apply"
        self.error = self.notice = ""
        yield
        try:
            out = await render.apply_blueprint(_render(), source="dashboard")
            self._show_applied(out)
            self.notice = "render.yaml applied." if out.get("ok") else "Apply stopped at a failure."
        except RenderFailure as exc:
            self._show_applied(exc.extra)
            problems = [str(p) for p in exc.extra.get("problems") or []][:20]
            self.error = f"Apply failed: {exc.message}" + (f" ({'; '.join(problems)})" if problems else "")
        self.plan_loaded = False
        self.plan = []
        self.busy = ""
        await self._refresh(max_age=0)

    def _show_applied(self, out: dict[str, Any]) -> None:
        result = out.get("result") or {}
        self.applied = [
            {"service": s["service"], "action": s["action"], "ok": "ok" if s.get("ok") else "failed", "detail": str(s.get("detail") or "")}
            for s in result.get("steps", [])
        ] + [{"service": n, "action": "—", "ok": "not attempted", "detail": ""} for n in result.get("notAttempted", [])]

    # ----- live ------------------------------------------------------------------------

    @classmethod
    def live_filter_for(cls, params: LiveParams) -> LiveFilter:
        """Every ``render.*`` task change (the page has no filters of its own)."""
        return _render_task

    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        """A Render task changed: show it; when one finished, its service's status may have too."""
        if not self.configured:
            return
        rows = list(self.tasks)
        index = {r["id"]: i for i, r in enumerate(rows)}
        finished = False
        for msg in msgs:
            new = task_row(msg.row)
            finished = finished or new["status"] in ("done", "error")
            if new["id"] in index:
                if int(new["version"]) >= int(rows[index[new["id"]]]["version"]):
                    rows[index[new["id"]]] = new
            else:
                rows.insert(0, new)
                index = {r["id"]: i for i, r in enumerate(rows)}
        self.tasks = rows[:10]
        if finished:
            await self._refresh(max_age=2.0)

    async def _live_tick(self) -> None:
        """Every few seconds: deploy statuses (cached, shared by every tab) and the monitor's fixes."""
        if self.configured and not self.busy:
            await self._refresh()
