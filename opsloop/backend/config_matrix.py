"""Every service's configuration report in one place: the app's own, and each registered
agent's `/config/validate` fetched with the internal key (an unreachable agent is reported)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from opsloop.backend.config import validate_config
from opsloop.backend.runtime import APP_SERVICE, Runtime


async def _agent_report(client: httpx.AsyncClient, slug: str, url: str, key: str) -> dict[str, Any]:
    try:
        resp = await client.get(url.rstrip("/") + "/config/validate", headers={"X-Internal-Key": key})
        if resp.status_code in (401, 403):
            return _refused_key(slug)
        body = resp.json()
        if resp.status_code != 200 or not isinstance(body, dict):
            raise ValueError(f"HTTP {resp.status_code}")
        return {**body, "slug": slug}
    except (httpx.HTTPError, ValueError) as exc:
        return {
            "service": slug,
            "slug": slug,
            "status": "unreachable",
            "required": {},
            "optional": {},
            "errors": [
                {"instancePath": "", "message": f"could not read {url}/config/validate: {type(exc).__name__}", "keyword": "unreachable", "params": {}}
            ],
        }


def _refused_key(slug: str) -> dict[str, Any]:
    """The agent runs but refuses our key: the two processes hold different INTERNAL_KEYs."""
    return {
        "service": slug,
        "slug": slug,
        "status": "error",
        "required": {"INTERNAL_KEY": "present"},
        "optional": {},
        "errors": [
            {
                "instancePath": "/INTERNAL_KEY",
                "message": "the agent refused the app's key: INTERNAL_KEY differs between the app and this agent",
                "keyword": "mismatch",
                "params": {},
            }
        ],
    }


async def collect_reports(rt: Runtime) -> list[dict[str, Any]]:
    """The app first, then every registered HTTP agent (fetched concurrently, 3 s each)."""
    reports: list[dict[str, Any]] = [{**validate_config("app").as_json(), "service": APP_SERVICE, "slug": "app"}]
    agents = [a for a in await rt.registry.agents() if a.kind == "agent" and a.url and a.url.startswith("http")]
    async with httpx.AsyncClient(timeout=3.0) as client:
        reports += await asyncio.gather(*(_agent_report(client, a.slug, a.url or "", rt.settings.INTERNAL_KEY or "") for a in agents))
    return reports
