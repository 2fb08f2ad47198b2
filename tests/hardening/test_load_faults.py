"""Load with faults: 10,000 echo tasks and 100,000 log lines while the echo agent is killed and
restarted twice and every database connection of the app is cut once.

What must hold afterwards (read from PostgreSQL, the source of truth):
- every task ends `done`: the agent's restarts cost no task (its tasks wait for it, spending no
  attempt, see `tasks/unreachable.py`), and an attempt cut short by the kill is retried;
- exactly one `done` event per done task, none for the others (no result applied twice);
- every log line is stored exactly once (each carries a unique number).

The client behaves as a well-written one does: it retries a request that got no answer or a 5xx,
with the same idempotency key for tasks, so retries never create a second task. Faults are
triggered by progress (after a share of the tasks was created) and each is observed before the
next: the kill is seen as failed attempts, the restart as the agent registered again, the cut
as terminated backends and a healthy app after.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.processes import PASSWORD, USER, wait_for
from tests.support.tasks import query

TASKS = 10_000
LOG_LINES = 100_000
LOG_BATCH = 1_000
CONCURRENCY = 24
RETRY_SLACK = timedelta(seconds=3)  # an attempt that began just before the restart can fail a moment after it

pytestmark = pytest.mark.slow


@dataclass
class Faults:
    """When each fault happened, so outcomes can be checked against them."""

    agent_down: list[tuple[datetime, datetime]] = field(default_factory=list)
    terminated: int = 0
    cut_at: datetime | None = None


@dataclass
class Client:
    http: httpx.AsyncClient
    retries: int = 0

    async def send(self, method: str, path: str, body: Any, ok: int) -> httpx.Response:
        """Retry on no answer or a 5xx (what a real client does); anything else fails the test."""
        for attempt in itertools.count():
            try:
                resp = await self.http.request(method, path, json=body)
            except httpx.TransportError:
                resp = None
            if resp is not None and resp.status_code == ok:
                return resp
            if resp is not None and resp.status_code < 500:
                raise AssertionError(f"{method} {path} → {resp.status_code} {resp.text[:300]}")
            assert attempt < 60, f"{method} {path} kept failing: {resp.status_code if resp else 'no answer'}"
            self.retries += 1
            await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")


async def produce(n: int, worker: Callable[[int], Awaitable[None]], progress: list[int]) -> None:
    """Run `worker(i)` for i in range(n) with bounded concurrency, counting completions."""
    numbers = iter(range(n))

    async def lane() -> None:
        for i in numbers:
            await worker(i)
            progress[0] += 1

    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))


def now_db(database_url: str) -> datetime:
    return query(database_url, "SELECT now() AS t")[0]["t"]


def failed_attempts_since(database_url: str, run: str, since: datetime) -> int:
    rows = query(
        database_url,
        "SELECT count(*) AS n FROM task_events WHERE correlation_id = %s AND kind IN ('retry_scheduled', 'error', 'agent_unreachable') AND ts >= %s",
        (run, since),
    )
    return rows[0]["n"]


def agent_registered_since(stack, since: datetime) -> bool:
    rows = query(stack.database_url, "SELECT started_at FROM agent_heartbeats WHERE slug = 'echo' AND url = %s", (stack.echo.url,))
    return bool(rows) and rows[0]["started_at"] >= since


async def inject(stack, run: str, progress: list[int], faults: Faults) -> None:
    """Kill the agent at 15 % of the tasks, cut the database at 40 %, kill the agent again at 65 %."""

    async def reach(share: float) -> None:
        while progress[0] < share * TASKS:
            await asyncio.sleep(0.05)

    async def bounce_agent() -> None:
        down = await asyncio.to_thread(now_db, stack.database_url)
        await asyncio.to_thread(stack.echo.kill)
        await asyncio.to_thread(
            wait_for, lambda: failed_attempts_since(stack.database_url, run, down), 30, 0.05, "an attempt to fail while the agent is down"
        )
        restart = await asyncio.to_thread(now_db, stack.database_url)
        await asyncio.to_thread(stack.echo.start)
        await asyncio.to_thread(wait_for, lambda: agent_registered_since(stack, restart), 30, 0.05, "the echo agent to register again")
        faults.agent_down.append((down, await asyncio.to_thread(now_db, stack.database_url)))

    def cut_database() -> None:
        faults.cut_at = now_db(stack.database_url)
        rows = query(
            stack.database_url,
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        faults.terminated = rows[0]["n"]
        wait_for(lambda: httpx.get(stack.url + "/health", timeout=2).status_code == 200, 30, 0.1, "the app to be healthy after the cut")

    await reach(0.15)
    await bounce_agent()
    await reach(0.40)
    await asyncio.to_thread(cut_database)
    await reach(0.65)
    await bounce_agent()


def outcome_problems(database_url: str, run: str, faults: Faults) -> list[str]:
    """Every task that ended otherwise than allowed, as readable lines (empty when all is well)."""
    rows = query(
        database_url,
        """SELECT t.id, t.status, t.attempts, t.max_attempts, t.error, t.result #> '{output,received,n}' AS echoed, t.payload -> 'n' AS n,
                  count(e.id) FILTER (WHERE e.kind = 'done') AS done_events,
                  array_agg(e.ts ORDER BY e.ts) FILTER (WHERE e.kind IN ('retry_scheduled', 'error')) AS failures
           FROM tasks t LEFT JOIN task_events e ON e.task_id = t.id
           WHERE t.correlation_id = %s GROUP BY t.id""",
        (run,),
    )
    problems = []
    if len(rows) != TASKS:
        problems.append(f"{len(rows)} tasks stored, expected {TASKS}")

    def during_outage(ts: datetime) -> bool:
        return any(down <= ts <= up + RETRY_SLACK for down, up in faults.agent_down)

    for r in rows:
        if r["status"] == "done":
            if r["done_events"] != 1:
                problems.append(f"task {r['id']} is done with {r['done_events']} done events")
            if r["echoed"] != r["n"]:
                problems.append(f"task {r['id']} result echoes {r['echoed']}, payload n is {r['n']}")
            outside = [ts for ts in r["failures"] or [] if not during_outage(ts)]
            if outside:
                problems.append(f"task {r['id']} failed attempts outside the agent's outages at {outside}")
        else:
            problems.append(f"task {r['id']} ended {r['status']}")
    return problems


async def test_load_with_faults(stack) -> None:
    run = f"load-{uuid.uuid4().hex[:8]}"
    service = f"load-{run}"
    faults = Faults()
    created = [0]
    shipped = [0]
    limits = httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(base_url=stack.url, auth=(USER, PASSWORD), timeout=60.0, limits=limits) as http:
        client = Client(http)

        async def create(i: int) -> None:
            body = {"type": "echo", "source": "hardening", "payload": {"n": i}, "correlationId": run, "idempotencyKey": f"{run}-{i}"}
            await client.send("POST", "/task", body, 202)

        async def ship(batch: int) -> None:
            start = batch * LOG_BATCH
            lines = [{"service": service, "level": "info", "message": f"load line {n}", "data": {"n": n}} for n in range(start, start + LOG_BATCH)]
            await client.send("POST", "/log", lines, 202)

        await asyncio.gather(
            produce(TASKS, create, created),
            produce(LOG_LINES // LOG_BATCH, ship, shipped),
            inject(stack, run, created, faults),
        )

    assert len(faults.agent_down) == 2, "the echo agent was not killed and restarted twice"
    assert faults.terminated >= 2, f"cutting the database terminated only {faults.terminated} connection(s)"

    def settled() -> bool:
        rows = query(stack.database_url, "SELECT count(*) AS n FROM tasks WHERE correlation_id = %s AND status IN ('queued', 'running')", (run,))
        return rows[0]["n"] == 0

    await asyncio.to_thread(wait_for, settled, 180, 0.5, "every task to finish")
    statuses = {
        r["status"]: r["n"] for r in query(stack.database_url, "SELECT status, count(*) AS n FROM tasks WHERE correlation_id = %s GROUP BY 1", (run,))
    }
    outages = ", ".join(f"{(up - down).total_seconds():.1f}s" for down, up in faults.agent_down)
    print(f"load: tasks {statuses}, client retries {client.retries}, agent outages {outages}, backends cut {faults.terminated}")
    problems = outcome_problems(stack.database_url, run, faults)
    assert not problems, f"{len(problems)} problem(s), first ones:\n" + "\n".join(problems[:20])

    (logs,) = query(
        stack.database_url, "SELECT count(*) AS total, count(DISTINCT (data ->> 'n')::int) AS distinct_n FROM logs WHERE service = %s", (service,)
    )
    assert logs["total"] == LOG_LINES, f"{logs['total']} log lines stored, expected {LOG_LINES} (distinct: {logs['distinct_n']})"
    assert logs["distinct_n"] == LOG_LINES
