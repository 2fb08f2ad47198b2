"""``apply --wait``: wait for the deploys an apply started, then check every web service answers.

Why: a deploy going ``live`` says Render started the process, not that it works. Each web
service of render.yaml must answer its health check path, and ``/config/validate`` must say
``ok`` (asked with the service's own ``INTERNAL_KEY``, read from Render and never shown), or
the apply is a bad outcome naming the service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from .blueprint import Blueprint
from .blueprint_apply import IN_PROGRESS, ApplyResult, StepResult
from .client import RenderAPIError, RenderClient

StepHook = Callable[[StepResult], Awaitable[None]]
ANSWER_TIMEOUT_S = 60.0


async def wait_and_check(
    client: RenderClient,
    blueprint: Blueprint,
    result: ApplyResult,
    *,
    on_step: StepHook,
    timeout_s: float = 1800.0,
    poll_s: float = 1.0,
    http: httpx.AsyncClient | None = None,
) -> bool:
    """Wait for ``result.deploys``, then check every web service; True when all is well.

    Each outcome is a step, added to ``result.steps`` and passed to ``on_step``.
    """

    async def record(step: StepResult) -> None:
        result.steps.append(step)
        await on_step(step)

    ok = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    for name, (sid, deploy_id) in result.deploys.items():
        status = await _until_done(client, sid, deploy_id, deadline, poll_s)
        good = status == "live"
        ok &= good
        detail = f"deploy {deploy_id} is {status}"
        if not good and status not in IN_PROGRESS:
            tail = [line for line in await client.build_logs(sid, deploy_id) if line.strip()][-3:]
            detail += "; last log lines: " + " | ".join(tail) if tail else ""
        await record(StepResult(name, "deployed", good, sid, detail, deploy_id))
    owned = http is None
    http = http or httpx.AsyncClient(timeout=10.0, follow_redirects=True)
    try:
        for desired in blueprint.services:
            if desired.type != "web_service":
                continue
            for step in await _check_service(client, http, desired.name, desired.health_path, loop.time() + ANSWER_TIMEOUT_S, poll_s):
                ok &= step.ok
                await record(step)
    finally:
        if owned:
            await http.aclose()
    return ok


async def _until_done(client: RenderClient, sid: str, deploy_id: str, deadline: float, poll_s: float) -> str:
    while True:
        status = str((await client.get_deploy(sid, deploy_id)).get("status"))
        if status not in IN_PROGRESS or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(poll_s)


async def _check_service(
    client: RenderClient, http: httpx.AsyncClient, name: str, health_path: str | None, deadline: float, poll_s: float
) -> list[StepResult]:
    found = [s for s in await client.list_services(name=name) if s["name"] == name]
    if not found:
        return [StepResult(name, "health", False, None, "not on Render")]
    service = found[0]
    sid = str(service["id"])
    deploys, _ = await client.list_deploys(sid, limit=1)
    latest = deploys[0].get("status") if deploys else "none"
    if latest != "live":
        return [StepResult(name, "health", False, sid, f"latest deploy is {latest}, not live")]
    url = str((service.get("serviceDetails") or {}).get("url") or "").rstrip("/")
    if not url:
        return [StepResult(name, "health", False, sid, "Render gives no URL for it")]
    steps = []
    if health_path:
        answered = await _answer(http, url + health_path, {}, deadline, poll_s)
        good = isinstance(answered, httpx.Response) and answered.status_code < 400
        steps.append(StepResult(name, "health", good, sid, f"GET {health_path}: {_said(answered)}"))
        if not good:
            return steps
    try:
        env = {e["key"]: e["value"] for e in await client.list_env_vars(sid)}
    except RenderAPIError as exc:
        return [*steps, StepResult(name, "config", False, sid, f"cannot read its env: {exc}")]
    headers = {"X-Internal-Key": env["INTERNAL_KEY"]} if env.get("INTERNAL_KEY") else {}
    answered = await _answer(http, url + "/config/validate", headers, deadline, poll_s)
    report: Mapping[str, Any] = {}
    if isinstance(answered, httpx.Response) and answered.status_code == 200:
        try:
            report = answered.json()
        except ValueError:
            report = {}
    good = report.get("status") == "ok"
    detail = "GET /config/validate: ok" if good else f"GET /config/validate: {_config_problem(answered, report)}"
    steps.append(StepResult(name, "config", good, sid, detail))
    return steps


async def _answer(http: httpx.AsyncClient, url: str, headers: Mapping[str, str], deadline: float, poll_s: float) -> httpx.Response | str:
    """The first answer below 500 (a service just gone live may still be warming up)."""
    last: httpx.Response | str = "no answer"
    while True:
        try:
            last = await http.get(url, headers=dict(headers))
            if last.status_code < 500:
                return last
        except httpx.HTTPError as exc:
            last = f"no answer ({type(exc).__name__})"
        if asyncio.get_running_loop().time() > deadline:
            return last
        await asyncio.sleep(poll_s)


def _said(answer: httpx.Response | str) -> str:
    return f"HTTP {answer.status_code}" if isinstance(answer, httpx.Response) else answer


def _config_problem(answer: httpx.Response | str, report: Mapping[str, Any]) -> str:
    if not report:
        return _said(answer)
    missing = [k for k, v in (report.get("required") or {}).items() if v != "present"]
    errors = [str(e.get("message")) for e in report.get("errors") or [] if isinstance(e, Mapping)]
    return f"{report.get('status')}: " + "; ".join([*(f"{k} missing" for k in missing), *errors][:5])
