"""The echo agent stops under load, for 5 s and then for 60 s, and comes back: no task fails because
of it (OPSLOOP_AGENT_WAIT_S is 300 s by default; tasks that outlive it end `error`, tested in
test_tasks_failures). Tasks keep arriving throughout, so some wait through each outage.

Only an attempt already in flight when the agent is killed can fail (the agent was running it);
it is retried, so it still ends `done`.
"""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from tests.conftest import Stack
from tests.support.processes import PASSWORD, USER, wait_for
from tests.support.tasks import query, wait_registered

pytestmark = pytest.mark.slow
RATE = 40  # tasks per second offered during the whole run


class Load:
    """Creates echo tasks at a steady rate in a thread until stopped."""

    def __init__(self, url: str, corr: str) -> None:
        self.url, self.corr = url, corr
        self.created = 0
        self.refused: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, auth=(USER, PASSWORD), timeout=30) as http:
            start = time.monotonic()
            while not self._stop.is_set():
                body = {"type": "echo", "source": "outage", "payload": {"n": self.created}, "correlationId": self.corr}
                resp = http.post("/task", json=body)
                if resp.status_code == 202:
                    self.created += 1
                else:
                    self.refused.append(f"{resp.status_code} {resp.text[:200]}")
                time.sleep(max(0.0, start + self.created / RATE - time.monotonic()))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def unreachable_events_since(stack: Stack, corr: str, since: float) -> int:
    rows = query(
        stack.database_url,
        "SELECT count(*) AS n FROM task_events WHERE correlation_id = %s AND kind = 'agent_unreachable' AND ts >= to_timestamp(%s)",
        (corr, since),
    )
    return rows[0]["n"]


def outage(stack: Stack, corr: str, seconds: float) -> None:
    """Kill the agent, see the dispatcher find it unreachable, keep it down `seconds`, restart it."""
    down = time.time()
    stack.echo.kill()
    wait_for(lambda: unreachable_events_since(stack, corr, down), timeout=30, what="a task to find the agent unreachable")
    time.sleep(max(0.0, down + seconds - time.time()))  # the outage itself: its length is the point of the test
    stack.echo.start()
    with stack.client() as c:
        wait_registered(c, "echo", stack.echo.url)


def test_agent_outages_under_load_fail_no_task(stack: Stack) -> None:
    corr = f"outage-{uuid.uuid4().hex[:8]}"
    with Load(stack.url, corr) as load:
        wait_for(lambda: load.created >= RATE, timeout=30, what="the load to run")
        outage(stack, corr, 5)
        wait_for(lambda: load.created >= 12 * RATE, timeout=60, what="the load to go on after the first outage")
        outage(stack, corr, 60)
        created_after = load.created
        wait_for(lambda: load.created >= created_after + 2 * RATE, timeout=60, what="the load to go on after the second outage")
    assert not load.refused, load.refused[:5]

    def settled() -> bool:
        rows = query(stack.database_url, "SELECT count(*) AS n FROM tasks WHERE correlation_id = %s AND status IN ('queued', 'running')", (corr,))
        return rows[0]["n"] == 0

    wait_for(settled, timeout=120, interval=0.5, what="every task to finish")
    statuses = {
        r["status"]: r["n"]
        for r in query(stack.database_url, "SELECT status, count(*) AS n FROM tasks WHERE correlation_id = %s GROUP BY 1", (corr,))
    }
    waited = query(
        stack.database_url,
        "SELECT count(DISTINCT task_id) AS n FROM task_events WHERE correlation_id = %s AND kind = 'agent_unreachable'",
        (corr,),
    )[0]["n"]
    print(f"agent outages: {load.created} tasks {statuses}, {waited} found the agent unreachable and waited")
    assert statuses == {"done": load.created}
    assert waited >= 2  # at least one task waited through each outage
