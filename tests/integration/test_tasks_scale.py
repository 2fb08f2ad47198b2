"""Scale-out: two app instances share one database and 2,000 echo tasks. Every task ends done,
and each attempt was dispatched once: one `running` event per attempt, one request at the agent
per attempt (its ECHO_REQUEST lines), one `done` event per task; both instances took part."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Stack
from tests.support.processes import PASSWORD, USER, Proc, app_instance, echo_agent, free_port, wait_for
from tests.support.tasks import create, query, register_agent, unique, wait_all, wait_registered

TASKS = 2000


@pytest.fixture(scope="module")
def pair(database_url: str) -> Iterator[tuple[Stack, Proc]]:
    """Instances A and B against one database; the echo agent registers with A."""
    a = app_instance(database_url, name="scale-app-a")
    b = app_instance(database_url, name="scale-app-b")
    stack = Stack(database_url, a, echo_agent(database_url, a.url, name="scale-echo"))
    try:
        a.start(wait=False)
        b.start(wait=False)
        a.wait_healthy()
        b.wait_healthy()
        stack.echo.start()
        with stack.client() as c:
            wait_registered(c, "echo", stack.echo.url)
        yield stack, b
    finally:
        stack.echo.stop()
        b.stop()
        a.stop()


async def _create_all(urls: list[str], corr: str, n: int, concurrency: int = 32) -> list[str]:
    """POST n tasks, alternating instances, `concurrency` requests in flight."""
    gate = asyncio.Semaphore(concurrency)
    clients = [httpx.AsyncClient(base_url=u, auth=(USER, PASSWORD), timeout=30) for u in urls]

    async def one(i: int) -> str:
        async with gate:
            resp = await clients[i % len(clients)].post("/task", json={"type": "echo", "source": "scale", "correlationId": corr, "payload": {"i": i}})
            assert resp.status_code == 202, resp.text
            return resp.json()["id"]

    try:
        return await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        for c in clients:
            await c.aclose()


def test_two_instances_share_2000_tasks(pair: tuple[Stack, Proc]) -> None:
    stack, b = pair
    corr = unique("scale")
    ids = asyncio.run(_create_all([stack.url, b.url], corr, TASKS))
    assert len(set(ids)) == TASKS
    wait_all(stack.database_url, corr, TASKS, timeout=120)

    per_task = query(
        stack.database_url,
        """SELECT t.id, t.attempts, t.result->'output'->'received'->>'i' AS echoed, t.payload->>'i' AS sent,
                  count(*) FILTER (WHERE e.kind = 'created') AS created,
                  count(*) FILTER (WHERE e.kind = 'running') AS running,
                  count(*) FILTER (WHERE e.kind = 'done') AS done
           FROM tasks t JOIN task_events e ON e.task_id = t.id
           WHERE t.correlation_id = %s GROUP BY t.id""",
        (corr,),
    )
    assert len(per_task) == TASKS
    bad = [r for r in per_task if not (r["created"] == 1 and r["done"] == 1 and r["running"] == r["attempts"] >= 1 and r["echoed"] == r["sent"])]
    assert not bad, bad[:5]

    instances = query(
        stack.database_url,
        """SELECT e.data->>'instance' AS instance, count(*) AS n FROM task_events e JOIN tasks t ON t.id = e.task_id
           WHERE t.correlation_id = %s AND e.kind = 'running' GROUP BY 1""",
        (corr,),
    )
    assert len(instances) == 2, instances

    # At the agent: exactly one request per attempt (its log lines arrive in batches, so poll).
    def agent_requests() -> list[dict] | None:
        rows = query(
            stack.database_url,
            """SELECT t.id, t.attempts, count(l.id) AS requests FROM tasks t
               LEFT JOIN logs l ON l.task_id = t.id AND l.message = 'ECHO_REQUEST'
               WHERE t.correlation_id = %s GROUP BY t.id""",
            (corr,),
        )
        return rows if all(r["requests"] >= r["attempts"] for r in rows) else None

    rows = wait_for(agent_requests, timeout=30, interval=0.5, what="every ECHO_REQUEST line stored")
    assert all(r["requests"] == r["attempts"] for r in rows)


def test_agent_moving_to_a_new_url_is_followed_by_every_instance(pair: tuple[Stack, Proc]) -> None:
    """An agent registers again at a new URL (through instance A) while instance B has the old
    one cached: B must follow at once, not when its cache expires — by then quick retries
    against the old URL would have used up every attempt of the tasks B claimed."""
    stack, b = pair
    with stack.service_client() as service, httpx.Client(base_url=b.url, auth=(USER, PASSWORD), timeout=10) as via_b:
        limits = {"mover.echo": {"maxAttempts": 3, "backoffMs": 50}}
        register_agent(service, "mover", f"http://127.0.0.1:{free_port()}", ["mover.echo"], limits=limits)
        create(via_b, "mover.echo", {"warm": True})  # B routes it, so B now caches the dead URL
        register_agent(service, "mover", stack.echo.url, ["mover.echo"], limits=limits)
        corr = unique("moved")
        ids = [create(via_b, "mover.echo", {"i": i}, correlationId=corr)["id"] for i in range(40)]
    wait_all(stack.database_url, corr, len(ids), timeout=30)
    claimed_by = query(
        stack.database_url,
        "SELECT DISTINCT e.data->>'instance' AS instance FROM task_events e JOIN tasks t ON t.id = e.task_id "
        "WHERE t.correlation_id = %s AND e.kind = 'running'",
        (corr,),
    )
    assert len(claimed_by) == 2, "both instances ran some of them"
