"""The agent SDK's log sink: outages are retried, a batch the app refuses is dropped and counted."""

from __future__ import annotations

import httpx
import pytest

from agents.sdk import AgentApp, AgentConfig
from opsloop.shared.logwriter import SinkRejected

BATCH = [{"service": "s", "level": "info", "message": "m", "data": None, "task_id": None, "trace_id": None, "correlation_id": None}]


def agent_answering(status: int) -> AgentApp:
    config = AgentConfig.from_env({"INTERNAL_KEY": "k" * 20, "OPSLOOP_URL": "http://app.test"})
    agent = AgentApp(
        slug="t", service="t", task_types=["t"], endpoint="/t", public_url="http://agent.test", config_service="echo-agent", config=config
    )
    agent.http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(status, json={"error": "x"})))
    return agent


@pytest.mark.parametrize("status", [500, 503, 401, 429])
async def test_outages_and_auth_problems_are_kept_for_retry(status: int) -> None:
    with pytest.raises(RuntimeError):
        await agent_answering(status)._ship_logs(BATCH)


async def test_a_refused_batch_is_rejected_not_retried() -> None:
    with pytest.raises(SinkRejected):
        await agent_answering(400)._ship_logs(BATCH)


async def test_an_accepted_batch_passes() -> None:
    await agent_answering(202)._ship_logs(BATCH)
