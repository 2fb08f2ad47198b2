"""`POST /echo` → `{service, received, timestamp}`, logging ECHO_REQUEST and ECHO_RESPONSE."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agents.sdk import AgentApp, TaskContext
from opsloop.backend.config import get_settings

SERVICE = "echo-agent-svc"

agent = AgentApp(
    slug="echo",
    service=SERVICE,
    task_types=["echo"],
    endpoint="/echo",
    public_url=get_settings().ECHO_AGENT_URL,
    config_service="echo-agent",
    limits={"echo": {"timeoutMs": 5000, "maxAttempts": 3}},
)
app = agent.app


@agent.handler("/echo")
async def echo(body: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    payload = body.get("payload")
    ctx.info("ECHO_REQUEST", {"payload": payload})
    answer = {"service": SERVICE, "received": payload, "timestamp": datetime.now(UTC).isoformat()}
    ctx.info("ECHO_RESPONSE", {"timestamp": answer["timestamp"]})
    return answer
