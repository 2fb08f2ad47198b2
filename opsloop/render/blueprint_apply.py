"""Carry a Blueprint plan out through Render's API, in the order references need.

Why an order: a service's ``fromDatabase`` value exists only once its database is available, a
``fromService`` value once its target exists, a ``fromGroup`` once the group exists. So:
databases (created, waited for until ``available``, connection info read) → Key Value → env
groups → services (referenced ones first; a reference whose target does not exist yet is set
as soon as it does) → group links → deploys.

Deploys: one per changed service per apply, as Render's Blueprint sync does. A service created
here deploys by itself; if its env changed after it was created (a reference to itself, a group
linked), that first deploy is cancelled while it still runs and one deploy carries everything.

Before changing anything, apply refuses a plan that could not finish (``Plan.refusal``: a
``sync: false`` value nobody gave, a service without a repository); afterwards it stops at the
first failure and reports what was done. ``on_step`` sees every step as it happens (the
``render.apply`` task records each as an event).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .blueprint import BlueprintError, Ref
from .blueprint_plan import EnvAction, Plan, ServicePlan, resolve
from .client import RenderAPIError, RenderClient

IN_PROGRESS = frozenset({"created", "queued", "build_in_progress", "update_in_progress", "pre_deploy_in_progress"})
AVAILABLE_TIMEOUT_S = 900.0


@dataclass
class StepResult:
    service: str
    action: str
    ok: bool
    service_id: str | None = None
    detail: str = ""
    deploy_id: str | None = None
    kind: str = "service"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "service": self.service,
            "action": self.action,
            "ok": self.ok,
            "serviceId": self.service_id,
            "detail": self.detail,
            "deployId": self.deploy_id,
        }


@dataclass
class ApplyResult:
    steps: list[StepResult] = field(default_factory=list)
    not_attempted: list[str] = field(default_factory=list)
    deploys: dict[str, tuple[str, str]] = field(default_factory=dict)  # service name -> (service id, deploy id)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps) and not self.not_attempted

    @property
    def failed(self) -> StepResult | None:
        return next((s for s in self.steps if not s.ok), None)

    def to_dict(self) -> dict[str, Any]:
        failed = self.failed
        return {
            "ok": self.ok,
            "steps": [s.to_dict() for s in self.steps],
            "failed": failed.to_dict() if failed else None,
            "notAttempted": list(self.not_attempted),
            "deploys": {name: {"serviceId": sid, "deployId": did} for name, (sid, did) in self.deploys.items()},
        }


@dataclass
class _Deferred:
    service: str
    service_id: str
    key: str
    ref: Ref


StepHook = Callable[[StepResult], Awaitable[None]]


class Applier:
    """Carries one plan out; keeps what it learns (new resources) for later references."""

    def __init__(self, client: RenderClient, plan_: Plan, owner_id: str, *, on_step: StepHook | None = None, poll_s: float = 1.0) -> None:
        self.client = client
        self.plan = plan_
        self.owner_id = owner_id
        self.on_step = on_step
        self.poll_s = poll_s
        self.actual = plan_.actual
        self.deferred: list[_Deferred] = []
        self.result = ApplyResult()
        self.created: dict[str, str | None] = {}  # service id -> the deploy its creation started
        self.dirty: dict[str, str] = {}  # service id -> name: changed, needs a deploy
        self.names: dict[str, str] = {}  # service id -> name

    async def _record(self, step: StepResult) -> None:
        self.result.steps.append(step)
        if self.on_step is not None:
            await self.on_step(step)

    async def run(self) -> ApplyResult:
        refusal = self.plan.refusal()
        if refusal is not None:
            raise refusal
        order = [*self.plan.resources, *self.plan.services]
        for index, sp in enumerate(order):
            try:
                await self._record(await self._step(sp))
                await self._settle_deferred(final=False)
            except (RenderAPIError, BlueprintError, TimeoutError) as exc:
                await self._record(StepResult(sp.name, sp.action, False, sp.service_id, str(exc), kind=sp.kind))
                self.result.not_attempted = [s.name for s in order[index + 1 :]]
                return self.result
        try:
            await self._settle_deferred(final=True)
            await self._link_groups()
            await self._deploy_changed()
        except (RenderAPIError, BlueprintError) as exc:
            await self._record(StepResult("references", "env", False, None, str(exc)))
        return self.result

    async def _step(self, sp: ServicePlan) -> StepResult:
        if sp.action == "noop":
            if sp.kind == "service" and sp.service_id:
                self.names[sp.service_id] = sp.name
            return StepResult(sp.name, "noop", True, sp.service_id, "up to date", kind=sp.kind)
        if sp.kind == "database":
            return await self._create_database(sp)
        if sp.kind == "keyvalue":
            return await self._create_key_value(sp)
        if sp.kind == "envGroup":
            return await self._group(sp)
        if sp.action == "create":
            return await self._create(sp)
        return await self._update(sp)

    # ----- databases and Key Value ---------------------------------------------------

    async def _create_database(self, sp: ServicePlan) -> StepResult:
        created = await self.client.create_postgres({**(sp.create_body or {}), "ownerId": self.owner_id})
        db = await self._until_available(lambda: self.client.get_postgres(created["id"]), sp.name)
        self.actual.databases[sp.name] = db
        self.actual.connections[("database", sp.name)] = await self.client.postgres_connection_info(db["id"])
        return StepResult(sp.name, "create", True, db["id"], "created; available", kind="database")

    async def _create_key_value(self, sp: ServicePlan) -> StepResult:
        created = await self.client.create_key_value({**(sp.create_body or {}), "ownerId": self.owner_id})
        kv = await self._until_available(lambda: self.client.get_key_value(created["id"]), sp.name)
        self.actual.key_values[sp.name] = kv
        self.actual.connections[("keyvalue", sp.name)] = await self.client.key_value_connection_info(kv["id"])
        return StepResult(sp.name, "create", True, kv["id"], "created; available", kind="keyvalue")

    async def _until_available(self, read: Callable[[], Awaitable[dict[str, Any]]], name: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + AVAILABLE_TIMEOUT_S
        while True:
            current = await read()
            if current.get("status") == "available":
                return current
            if current.get("status") not in ("creating", "updating_instance", "config_restart", None) or loop.time() > deadline:
                raise BlueprintError(f"{name} is {current.get('status')}, not available")
            await asyncio.sleep(self.poll_s)

    # ----- env groups ------------------------------------------------------------------

    async def _group(self, sp: ServicePlan) -> StepResult:
        entries, later = await self._env_entries(sp.env_actions)
        if later:
            raise BlueprintError(f"env group {sp.name}: references are not supported in env groups ({', '.join(k for k, _ in later)})")
        if sp.action == "create":
            created = await self.client.create_env_group({"name": sp.name, "ownerId": self.owner_id, "envVars": entries})
            self.actual.groups[sp.name] = created
            return StepResult(sp.name, "create", True, created["id"], f"created with {len(entries)} variable(s)", kind="envGroup")
        assert sp.service_id is not None
        group: dict[str, Any] = {}
        for entry in entries:
            group = await self.client.set_env_group_var(sp.service_id, entry["key"], entry.get("value"), generate=bool(entry.get("generateValue")))
        self.actual.groups[sp.name] = group or self.actual.groups[sp.name]
        for link in self.actual.groups[sp.name].get("serviceLinks") or []:
            self.dirty[link["id"]] = link.get("name", link["id"])  # linked services see the change on their next deploy
        return StepResult(sp.name, "update", True, sp.service_id, f"set {', '.join(e['key'] for e in entries)}", kind="envGroup")

    async def _link_groups(self) -> None:
        for sp in self.plan.services:
            service = self.actual.services.get(sp.name)
            for name in sp.link_groups:
                group = self.actual.groups.get(name)
                if group is None or service is None:
                    raise BlueprintError(f"{sp.name}: env group {name} does not exist")
                self.actual.groups[name] = await self.client.link_env_group(group["id"], service["id"])
                self.dirty[service["id"]] = sp.name
                await self._record(StepResult(sp.name, "link", True, service["id"], f"linked env group {name}"))

    # ----- services ----------------------------------------------------------------------

    async def _create(self, sp: ServicePlan) -> StepResult:
        body = json.loads(json.dumps(sp.create_body or {}))
        body["ownerId"] = self.owner_id
        env_vars, later = await self._env_entries(sp.env_actions)
        if env_vars:
            body["envVars"] = env_vars
        created = await self.client.create_service(body)
        service = created["service"]
        sid = str(service["id"])
        self.actual.services[sp.name] = service
        self.actual.env.pop(sp.name, None)
        self.names[sid] = sp.name
        self.created[sid] = created.get("deployId")
        self.deferred += [_Deferred(sp.name, sid, key, ref) for key, ref in later]
        detail = f"created; {len(later)} reference(s) to set later" if later else "created"
        return StepResult(sp.name, "create", True, sid, detail, created.get("deployId"))

    async def _update(self, sp: ServicePlan) -> StepResult:
        assert sp.service_id is not None
        self.names[sp.service_id] = sp.name
        done = []
        if sp.patch:
            self.actual.services[sp.name] = await self.client.update_service(sp.service_id, sp.patch)
            done.append("fields")
        if sp.env_actions:
            current = {e["key"]: e["value"] for e in await self.client.list_env_vars(sp.service_id)}
            entries, later = await self._env_entries(sp.env_actions)
            merged = {k: {"key": k, "value": v} for k, v in current.items()}
            merged.update({e["key"]: e for e in entries})
            await self.client.replace_env_vars(sp.service_id, list(merged.values()))
            self.actual.env.pop(sp.name, None)
            self.deferred += [_Deferred(sp.name, sp.service_id, key, ref) for key, ref in later]
            done.append("env")
        if done:
            self.dirty[sp.service_id] = sp.name
        return StepResult(sp.name, "update", True, sp.service_id, "updated " + " and ".join(done) if done else "groups to link")

    async def _value_of(self, ref: Ref) -> str | None:
        if ref.kind == "service" and ref.name in self.actual.services and ref.name not in self.actual.env:
            target_id = str(self.actual.services[ref.name]["id"])
            self.actual.env[ref.name] = {e["key"]: e["value"] for e in await self.client.list_env_vars(target_id)}
        return resolve(ref, self.actual)

    async def _env_entries(self, actions: Sequence[EnvAction]) -> tuple[list[dict[str, Any]], list[tuple[str, Ref]]]:
        entries: list[dict[str, Any]] = []
        later: list[tuple[str, Ref]] = []
        for action in actions:
            if action.kind == "value":
                entries.append({"key": action.key, "value": action.value})
            elif action.kind == "generate":
                entries.append({"key": action.key, "generateValue": True})
            else:
                assert action.ref is not None
                value = await self._value_of(action.ref)
                if value is None:
                    later.append((action.key, action.ref))
                else:
                    entries.append({"key": action.key, "value": value})
        return entries, later

    async def _settle_deferred(self, *, final: bool) -> None:
        """Set references whose target now exists; at the end, all must be set."""
        pending = []
        for item in self.deferred:
            value = await self._value_of(item.ref)
            if value is None:
                if final:
                    raise BlueprintError(f"env {item.key} of {item.service}: {item.ref.describe()} still does not exist")
                pending.append(item)
                continue
            await self.client.set_env_var(item.service_id, item.key, value)
            self.actual.env.pop(item.service, None)
            self.dirty[item.service_id] = item.service
            await self._record(StepResult(item.service, "env", True, item.service_id, f"set {item.key} from {item.ref.name}"))
        self.deferred = pending

    # ----- deploys -----------------------------------------------------------------------

    async def _deploy_changed(self) -> None:
        """One deploy per changed service (module docstring)."""
        for sid, deploy_id in self.created.items():
            if sid not in self.dirty and deploy_id:
                self.result.deploys[self.names[sid]] = (sid, deploy_id)
        for sid, name in self.dirty.items():
            first = self.created.get(sid)
            if first:
                await self._cancel_if_running(sid, first)
            deploy = await self.client.trigger_deploy(sid)
            if deploy is None:  # Render queued it behind one still running
                deploys, _ = await self.client.list_deploys(sid, limit=5)
                deploy = next((d for d in deploys if d.get("status") == "queued"), deploys[0] if deploys else None)
            deploy_id = str(deploy["id"]) if deploy else None
            if deploy_id:
                self.result.deploys[name] = (sid, deploy_id)
            await self._record(StepResult(name, "deploy", True, sid, "deploy started (env or settings changed)", deploy_id))

    async def _cancel_if_running(self, sid: str, deploy_id: str) -> None:
        current = await self.client.get_deploy(sid, deploy_id)
        if current.get("status") in IN_PROGRESS:
            try:
                await self.client.cancel_deploy(sid, deploy_id)
            except RenderAPIError as exc:
                if exc.status != 400:  # it finished meanwhile
                    raise


async def apply(client: RenderClient, plan_: Plan, owner_id: str, *, on_step: StepHook | None = None, poll_s: float = 1.0) -> ApplyResult:
    """Carry a plan out (module docstring); raises BlueprintError before any change when it cannot finish."""
    return await Applier(client, plan_, owner_id, on_step=on_step, poll_s=poll_s).run()
