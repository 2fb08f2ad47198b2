"""The Render agent: opsloop's own agent for ``render.*`` tasks, run in-process.

Why an agent at all: every change made to Render (from the API, the CLI, the dashboard or the
monitor) is a task, so it is queued, claimed, retried or failed like any other, and each step
it takes is a task event the operator sees in the activity stream. Entry points create the task
and wait for it (``service.py``); whichever instance claims it runs :meth:`RenderAgent.handle`
(registered as the local handler of the ``render`` agent, see ``runtime.py``) with the process's one :class:`RenderClient`.

Task types and payloads (camelCase, like the REST bodies):

- ``render.create``  ``{service: <servicePOST body>, env?: {K: V}}`` → ``{service, env, deployId}``
  (``ownerId`` defaults to RENDER_OWNER_ID, else the account's only owner)
- ``render.env``     ``{serviceId, env: {K: V}, clear?, deploy?=true}`` → ``{serviceId, env, changed, deploy}``
  (merged unless clear; a change is deployed, as Render's dashboard does, unless ``deploy`` is false)
- ``render.deploy``  ``{serviceId, clearCache?}`` → ``{serviceId, deploy}``
- ``render.apply``   ``{path?, sealedEnv?, wait?}`` → ``{ok, plan, result}`` (render.yaml in the repository
  folder; ``sealedEnv`` holds the operator's ``sync: false`` values; ``wait`` waits for the deploys
  and checks every web service's health path and ``/config/validate``)
- ``render.autofix`` ``{serviceId, deployId, problems, changes, patch}`` → ``{serviceId, patch, deploy, outcome}``:
  patches, redeploys and waits for the redeploy; when it fails too the patch is reverted and the
  task ends ``error`` (the fix did not help)

Failures: Render's 4xx answers (and invalid payloads) end the task at once (retrying the same
request cannot help); connection failures, 429 and 5xx are left to the dispatcher's retries
where repeating is harmless (``render.env`` is a PUT). Writes that create something (a service,
a deploy) get one attempt, so nothing is ever created twice. Before failing, the agent records a
``render.error`` event with Render's status and message, which the entry points turn back into
the HTTP status the caller sees.

Env values whose names look secret (``*TOKEN*``, ``*PASS*``, ``*_KEY``...) are masked in events
and task results; the payload carries them (the task must be runnable by any instance).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from opsloop.backend.config import Settings, get_settings
from opsloop.backend.logs.writer import LogWriter
from opsloop.backend.plugin import Host
from opsloop.backend.tasks.dispatcher import PermanentFailure

from . import tasks
from .blueprint import MASK, BlueprintError, load_blueprint
from .blueprint_apply import ApplyResult, StepResult, apply
from .blueprint_plan import plan_against
from .blueprint_wait import wait_and_check
from .client import RenderAPIError, RenderClient, change_env
from .reference import project_root
from .task_types import ACTOR, LIMITS, LOCAL_URL, SLUG, TASK_TYPES  # noqa: F401 (the agent's contract, named here too)

FAILED_STATUSES = frozenset({"build_failed", "update_failed", "pre_deploy_failed"})
IN_PROGRESS_STATUSES = frozenset({"created", "queued", "build_in_progress", "update_in_progress", "pre_deploy_in_progress"})
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|PRIVATE|CREDENTIAL|DSN|DATABASE_URL|(^|_)KEY($|_)", re.IGNORECASE)
_SERVICE_ID = re.compile(r"^[a-z]{3}-[A-Za-z0-9]{1,64}$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,255}$")
AUTOFIX_FIELDS = {"rootDir": ("rootDir",), "buildCommand": ("serviceDetails", "buildCommand"), "publishPath": ("serviceDetails", "publishPath")}

Emit = Callable[[str, Any], Awaitable[None]]


class PayloadError(ValueError):
    """A task payload the agent cannot act on (a 400 for the caller)."""


class RenderConfigError(ValueError):
    """Render is reachable but opsloop's Render configuration cannot serve this request."""


# ----- small shared helpers ---------------------------------------------------------------


def mask_env(env: Mapping[str, str]) -> dict[str, str]:
    """Values of secret-looking keys replaced by ``***`` (for events, results and screens)."""
    return {k: (MASK if SECRET_NAME.search(k) else v) for k, v in env.items()}


def service_id_of(value: Any) -> str:
    if not isinstance(value, str) or not _SERVICE_ID.match(value):
        raise PayloadError("serviceId must be a Render service id such as srv-abc123")
    return value


def env_of(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise PayloadError("env must be an object of KEY: value strings")
    out: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _ENV_KEY.match(key):
            raise PayloadError(f"env key {str(key)[:60]!r} is not a valid variable name")
        if not isinstance(val, str):
            raise PayloadError(f"env {key}: value must be a string")
        if "\x00" in val:
            raise PayloadError(f"env {key}: value cannot contain the NUL character")
        out[key] = val
    return out


def blueprint_path(raw: Any = None) -> Path:
    """render.yaml (or ``raw``), confined to the repository folder; a clear error otherwise."""
    root = project_root().resolve()
    if raw is None or raw == "":
        raw = "render.yaml"
    if not isinstance(raw, str) or "\x00" in raw or len(raw) > 500:
        raise PayloadError("path must be a file name inside the repository folder")
    candidate = Path(raw)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise PayloadError(f"path {raw!r} is outside the repository folder")
    if resolved.suffix not in (".yaml", ".yml"):
        raise PayloadError(f"path {raw!r} is not a .yaml file")
    if not resolved.is_file():
        raise PayloadError(f"path {raw!r}: no such file in the repository folder")
    return resolved


def blueprint_source() -> tuple[str | None, str | None]:
    """The repository (and branch) services without a ``repo:`` are created from.

    OPSLOOP_RENDER_REPO / OPSLOOP_RENDER_BRANCH (default ``main``), or None: never guessed from
    this checkout (its ``origin`` may be a fork, a mirror or a local path Render cannot pull).
    """
    settings = get_settings()
    repo_url = settings.OPSLOOP_RENDER_REPO or None
    return repo_url, (settings.OPSLOOP_RENDER_BRANCH or "main") if repo_url else None


def _deploy_brief(deploy: Mapping[str, Any] | None) -> dict[str, Any]:
    if not deploy:
        return {}
    return {"deployId": deploy.get("id"), "status": deploy.get("status"), "trigger": deploy.get("trigger")}


# ----- the agent --------------------------------------------------------------------------


class RenderAgent:
    """Runs ``render.*`` tasks with one Render client; see the module docstring."""

    def __init__(self, host: Host, client: RenderClient, settings: Settings, writer: LogWriter | None = None) -> None:
        self.host = host
        self.client = client
        self.settings = settings
        self.writer = writer
        self._owner_id: str | None = settings.RENDER_OWNER_ID or None
        self._handlers: dict[str, Callable[[dict[str, Any], Emit], Awaitable[Any]]] = {
            "render.create": self.create,
            "render.env": self.env,
            "render.deploy": self.deploy,
            "render.apply": self.apply,
            "render.autofix": self.autofix,
        }

    async def owner_id(self) -> str:
        """RENDER_OWNER_ID, else the account's only owner (remembered)."""
        if self._owner_id:
            return self._owner_id
        owners = await self.client.list_owners()
        if len(owners) != 1:
            names = ", ".join(f"{o.get('name')} ({o.get('id')})" for o in owners[:5]) or "none"
            raise RenderConfigError(f"the Render token can act for {len(owners)} owners ({names}): set RENDER_OWNER_ID")
        self._owner_id = str(owners[0]["id"])
        return self._owner_id

    async def handle(self, task: dict[str, Any]) -> Any:
        """The ``render`` agent's local handler: run one claimed task, writing an event per step."""
        handler = self._handlers.get(task["type"])
        ids = {"task_id": task["id"], "trace_id": task["trace_id"], "correlation_id": task["correlation_id"]}

        async def emit(kind: str, data: Any) -> None:
            await tasks.add_event(self.host, task["id"], ACTOR, kind, data)

        if handler is None:
            raise PermanentFailure(f"the render agent does not handle {task['type']}")
        payload = task["payload"] if isinstance(task["payload"], dict) else {}
        try:
            output = await handler(payload, emit)
        except RenderAPIError as exc:
            await emit(
                "render.error", {"status": exc.status, "message": exc.message, "requestId": exc.request_id, "method": exc.method, "path": exc.path}
            )
            self._log("warn", f"{task['type']} failed: {exc}", **ids)
            if exc.status == 0 or exc.status == 429 or exc.status >= 500:
                raise RuntimeError(str(exc)) from None
            raise PermanentFailure(str(exc)) from None
        except (PayloadError, BlueprintError, RenderConfigError) as exc:
            status = 503 if isinstance(exc, RenderConfigError) else 400
            problems = list(getattr(exc, "problems", None) or [])
            await emit("render.error", {"status": status, "message": str(exc).splitlines()[0], **({"problems": problems} if problems else {})})
            self._log("warn", f"{task['type']} refused: {str(exc).splitlines()[0]}", **ids)
            raise PermanentFailure(str(exc)) from None
        self._log("info", f"{task['type']} done", **ids)
        return output

    def _log(self, level: str, message: str, **ids: Any) -> None:
        if self.writer is not None:
            self.writer.log(level, f"render agent: {message}", None, **ids)

    # ----- handlers ------------------------------------------------------------------

    async def create(self, p: dict[str, Any], emit: Emit) -> dict[str, Any]:
        service = p.get("service")
        if not isinstance(service, dict) or not service:
            raise PayloadError("service must be an object (Render's service body: type, name, repo, serviceDetails...)")
        body = dict(service)
        if "sealedEnv" in p:
            sealed = _open(p["sealedEnv"])
            env = env_of(sealed.get("env") or {})
            if sealed.get("envVars"):
                body["envVars"] = sealed["envVars"]
        else:
            env = env_of(p.get("env") or {})
        body["ownerId"] = body.get("ownerId") or await self.owner_id()
        if env:
            raw_given = body.get("envVars")
            given: list[Any] = raw_given if isinstance(raw_given, list) else []
            merged = {e["key"]: e for e in given if isinstance(e, dict) and isinstance(e.get("key"), str)}
            merged.update({k: {"key": k, "value": v} for k, v in env.items()})
            body["envVars"] = list(merged.values())
        keys = sorted({e["key"] for e in body.get("envVars") or [] if isinstance(e, dict) and isinstance(e.get("key"), str)})
        await emit("render.create.requested", {"name": body.get("name"), "type": body.get("type"), "ownerId": body["ownerId"], "envKeys": keys})
        created = await self.client.create_service(body)
        svc = created.get("service") or {}
        await emit("render.created", {"serviceId": svc.get("id"), "name": svc.get("name"), "deployId": created.get("deployId")})
        current = {e["key"]: e["value"] for e in await self.client.list_env_vars(str(svc["id"]))}
        return {"service": svc, "env": mask_env(current), "deployId": created.get("deployId")}

    async def env(self, p: dict[str, Any], emit: Emit) -> dict[str, Any]:
        sid = service_id_of(p.get("serviceId"))
        env = env_of(_open(p["sealedEnv"]) if "sealedEnv" in p else p.get("env"))
        clear = p.get("clear", False)
        if not isinstance(clear, bool):
            raise PayloadError("clear must be true or false")
        if clear and not env:
            raise PayloadError("clear with an empty env would delete every variable; send at least one")
        deploy = p.get("deploy", True)
        if not isinstance(deploy, bool):
            raise PayloadError("deploy must be true or false")
        await emit("render.env.requested", {"serviceId": sid, "keys": sorted(env), "clear": clear, "deploy": deploy})
        result, changed = await change_env(self.client, sid, env, clear=clear)
        await emit("render.env.updated", {"serviceId": sid, "keys": sorted(result), "clear": clear, "changed": changed})
        out: dict[str, Any] = {"serviceId": sid, "env": mask_env(result), "changed": changed, "deploy": None}
        if changed and deploy:  # env vars take effect on the next deploy, as in Render's dashboard
            started, queued = await self._trigger(sid, False)
            await emit("render.deploy.created", {"serviceId": sid, "queued": queued, **_deploy_brief(started)})
            out["deploy"] = started
        return out

    async def _trigger(self, sid: str, clear_cache: bool) -> tuple[dict[str, Any] | None, bool]:
        """Start a deploy; when Render only queued it (202, no body), find the queued one."""
        deploy = await self.client.trigger_deploy(sid, clear_cache=clear_cache)
        if deploy is not None:
            return deploy, False
        deploys, _ = await self.client.list_deploys(sid, limit=5)
        queued = [d for d in deploys if d.get("status") == "queued"]
        return (queued[0] if queued else (deploys[0] if deploys else None)), True

    async def deploy(self, p: dict[str, Any], emit: Emit) -> dict[str, Any]:
        sid = service_id_of(p.get("serviceId"))
        clear = p.get("clearCache", False)
        if not isinstance(clear, bool):
            raise PayloadError("clearCache must be true or false")
        await emit("render.deploy.requested", {"serviceId": sid, "clearCache": clear})
        deploy, queued = await self._trigger(sid, clear)
        await emit("render.deploy.created", {"serviceId": sid, "queued": queued, **_deploy_brief(deploy)})
        return {"serviceId": sid, "deploy": deploy}

    async def apply(self, p: dict[str, Any], emit: Emit) -> dict[str, Any]:
        path = blueprint_path(p.get("path"))
        secrets = env_of(_open(p["sealedEnv"]) if "sealedEnv" in p else {})
        wait = p.get("wait", False)
        if not isinstance(wait, bool):
            raise PayloadError("wait must be true or false")
        repo_url, branch = blueprint_source()
        blueprint = load_blueprint(path, repo=repo_url, branch=branch)
        owner = await self.owner_id()
        plan_ = await plan_against(self.client, blueprint, owner, secrets)
        summary = {s.name: s.action for s in [*plan_.resources, *plan_.services]}
        await emit("render.plan", {"path": path.name, "actions": summary, "skipped": plan_.skipped, "givenKeys": sorted(secrets)})
        refusal = plan_.refusal()
        if refusal is not None:
            await emit("render.apply.refused", {"problems": refusal.problems})
            raise refusal

        async def on_step(step: StepResult) -> None:
            await emit("render.apply.step", step.to_dict())

        result = await apply(self.client, plan_, owner, on_step=on_step) if not plan_.noop else ApplyResult()
        if plan_.noop:
            await emit("render.apply.noop", {"resources": len(plan_.services) + len(plan_.resources)})
        failed = result.failed
        checked = True
        if wait and failed is None:
            checked = await wait_and_check(self.client, blueprint, result, on_step=on_step)
        out = {"ok": result.ok and checked, "plan": plan_.to_dict(), "result": result.to_dict(), "waited": wait}
        if not out["ok"]:
            await emit("render.apply.result", out)
            if failed is not None:
                raise PermanentFailure(f"apply stopped at {failed.service} ({failed.action}): {failed.detail}")
            raise PermanentFailure("applied, but not every service works: " + "; ".join(_bad_checks(result)))
        await emit("render.apply.done", {"deploys": sorted(result.deploys), "waited": wait})
        return out

    async def autofix(self, p: dict[str, Any], emit: Emit) -> dict[str, Any]:
        sid = service_id_of(p.get("serviceId"))
        patch = p.get("patch")
        if not isinstance(patch, dict) or not patch:
            raise PayloadError("patch must be an object")
        allowed_top = {"rootDir", "serviceDetails"}
        details = patch.get("serviceDetails", {})
        if set(patch) - allowed_top or not isinstance(details, dict) or set(details) - {"buildCommand", "publishPath"}:
            raise PayloadError("an autofix may only change rootDir, serviceDetails.buildCommand and serviceDetails.publishPath")
        if not all(isinstance(v, str) for v in [patch.get("rootDir", ""), *details.values()]):
            raise PayloadError("autofix values must be strings")
        await emit(
            "render.autofix.diagnosis",
            {"serviceId": sid, "deployId": p.get("deployId"), "problems": p.get("problems"), "changes": p.get("changes")},
        )
        await self.client.update_service(sid, patch)
        await emit("render.autofix.patched", {"serviceId": sid, "patch": patch})
        deploy, queued = await self._trigger(sid, False)
        await emit("render.autofix.redeploy", {"serviceId": sid, "queued": queued, **_deploy_brief(deploy)})
        if not deploy:
            raise PermanentFailure("the redeploy after the fix cannot be found on Render")
        final = await wait_deploy(self.client, sid, str(deploy["id"]))
        status = str(final.get("status"))
        if status == "live":
            await emit("render.autofix.outcome", {"outcome": "fixed", "deployId": final["id"], "status": status})
            return {"serviceId": sid, "patch": patch, "deploy": final, "outcome": "fixed"}
        revert = revert_patch(p.get("changes"))
        if revert:
            await self.client.update_service(sid, revert)
            await emit("render.autofix.reverted", {"serviceId": sid, "patch": revert})
        await emit("render.autofix.outcome", {"outcome": "failed", "deployId": final["id"], "status": status, "reverted": bool(revert)})
        undone = "the change was reverted" if revert else "nothing to revert"
        raise PermanentFailure(f"the fix did not help: redeploy {final['id']} is {status}; {undone}")


async def wait_deploy(client: RenderClient, sid: str, deploy_id: str, *, first: float = 0.2, most: float = 5.0) -> dict[str, Any]:
    """Poll a deploy until it leaves the in-progress statuses (quickly at first, then every ``most`` s)."""
    delay = first
    while True:
        deploy = await client.get_deploy(sid, deploy_id)
        if deploy.get("status") not in IN_PROGRESS_STATUSES:
            return deploy
        await asyncio.sleep(delay)
        delay = min(most, delay * 1.5)


def revert_patch(changes: Any) -> dict[str, Any]:
    """The PATCH that puts back what an autofix changed (``changes``: ``[{field, from, to}]``)."""
    patch: dict[str, Any] = {}
    for change in changes if isinstance(changes, list) else []:
        field, before = change.get("field") if isinstance(change, dict) else None, change.get("from") if isinstance(change, dict) else None
        if field not in AUTOFIX_FIELDS or not isinstance(before, str):
            continue
        if field == "rootDir":
            patch["rootDir"] = before
        else:
            patch.setdefault("serviceDetails", {})[field] = before
    return patch


def _bad_checks(result: ApplyResult) -> list[str]:
    return [f"{s.service}: {s.detail}" for s in result.steps if not s.ok]


def _open(token: Any) -> Any:
    """Sealed env values (see `opsloop.render.sealing`); a payload error when they cannot be opened."""
    from opsloop.render.sealing import SealError, unseal

    if not isinstance(token, str):
        raise PayloadError("sealedEnv must be a sealed string")
    try:
        return unseal(token)
    except SealError as exc:
        raise PayloadError(str(exc)) from None
