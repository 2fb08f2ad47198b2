"""`POST /echo` → `{service, received, timestamp}`, logging ECHO_REQUEST and ECHO_RESPONSE.

A payload object with `sleepMs` (an integer, capped at `MAX_SLEEP_MS`) makes the agent wait that
long before answering: tests and demos need a slow agent (timeouts, leases, a killed instance)
without a second agent. A cancel from the orchestrator cuts the wait short.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from agents.sdk import AgentApp, AgentConfig, TaskContext

SERVICE = "echo-agent-svc"
MAX_SLEEP_MS = 30_000

config = AgentConfig.from_env()
agent = AgentApp(
    slug="echo",
    service=SERVICE,
    task_types=["echo"],
    endpoint="/echo",
    public_url=config.url("ECHO_AGENT_URL", "http://127.0.0.1:3001"),
    config_service="echo-agent",
    limits={"echo": {"timeoutMs": 5000, "maxAttempts": 3}},
    config=config,
)
app = agent.app


def sleep_ms(payload: Any) -> int:
    """The requested delay: `payload.sleepMs` when it is a non-negative integer, else none."""
    if not isinstance(payload, dict):
        return 0
    value = payload.get("sleepMs")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return 0
    return min(value, MAX_SLEEP_MS)


async def _wait(ms: int, task_id: str | None) -> bool:
    """Sleep `ms`, waking early (False) when the orchestrator cancels the task meanwhile."""
    deadline = asyncio.get_running_loop().time() + ms / 1000
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        if task_id is not None and task_id in agent.cancelled:
            return False
        await asyncio.sleep(min(0.05, left))
    return True


@agent.handler("/echo")
async def echo(body: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    payload = body.get("payload")
    ctx.info("ECHO_REQUEST", {"payload": payload})
    delay = sleep_ms(payload)
    if delay and not await _wait(delay, ctx.task_id):
        ctx.info("ECHO_CANCELLED", {"afterMs": delay})
        agent.cancelled.discard(ctx.task_id or "")
    answer = {"service": SERVICE, "received": payload, "timestamp": datetime.now(UTC).isoformat()}
    ctx.info("ECHO_RESPONSE", {"timestamp": answer["timestamp"]})
    return answer
