"""Failure handling with real processes: an agent that is down (then back, or for good), too slow,
or refusing; cancelling a running task; a task longer than its lease; and an app instance killed
with -9 while its tasks run. Leases are 2 s here (`OPSLOOP_LEASE_S`) so recovery is quick, and a
task waits 8 s for an unreachable agent (`OPSLOOP_AGENT_WAIT_S`)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from tests.conftest import Stack
from tests.support.processes import app_instance, echo_agent, free_port, wait_for
from tests.support.tasks import (
    create,
    event_kinds,
    fetch,
    query,
    register_agent,
    unique,
    wait_all,
    wait_registered,
    wait_status,
)

LEASE_S = 2
AGENT_WAIT_S = 8
SLOW_MS = 4000  # below the echo agent's 5 s timeout


@pytest.fixture(scope="module")
def cluster(database_url: str) -> Iterator[Stack]:
    """One app instance (short leases, 8 tasks at once) and the echo agent; tests may restart either."""
    app = app_instance(
        database_url, name="failures-app", OPSLOOP_LEASE_S=str(LEASE_S), DISPATCH_CONCURRENCY="8", OPSLOOP_AGENT_WAIT_S=str(AGENT_WAIT_S)
    )
    stack = Stack(database_url, app, echo_agent(database_url, app.url, name="failures-echo"))
    try:
        app.start()
        stack.echo.start()
        with stack.client() as c:
            wait_registered(c, "echo", stack.echo.url)
        yield stack
    finally:
        stack.echo.stop()
        stack.app.stop()


@pytest.fixture(scope="module")
def client(cluster: Stack) -> Iterator[httpx.Client]:
    with cluster.client() as c:
        yield c


@pytest.fixture(scope="module")
def service(cluster: Stack) -> Iterator[httpx.Client]:
    with cluster.service_client() as c:
        yield c


def test_agent_down_then_back(cluster: Stack, client: httpx.Client, service: httpx.Client) -> None:
    """A stopped agent costs no attempt: its tasks wait for it and run once it is back."""
    register_agent(service, "flaky", cluster.echo.url, ["flaky.echo"], limits={"flaky.echo": {"maxAttempts": 1, "backoffMs": 200}})
    corr = unique("down-up")
    cluster.echo.stop()
    ids = [create(client, "flaky.echo", {"i": i}, correlationId=corr)["id"] for i in range(5)]
    first = wait_for(
        lambda: next((e for i in ids for e in fetch(client, i)["events"] if e["kind"] == "agent_unreachable"), None),
        timeout=20,
        what="the dispatcher to find the agent unreachable",
    )
    assert "unreachable" in first["data"]["message"] and first["data"]["waitS"] == AGENT_WAIT_S
    assert all(fetch(client, i)["task"]["status"] in ("queued", "running") for i in ids)
    cluster.echo.start()  # same port, so the registered URL is right again
    wait_all(cluster.database_url, corr, len(ids), timeout=30)

    kinds = event_kinds(cluster.database_url, corr)
    for i in ids:
        task = fetch(client, i)["task"]
        assert task["error"] is None and task["result"]["output"]["received"] == task["payload"]
        assert task["attempts"] == 1  # one attempt allowed, none spent on the outage
        assert kinds[i]["done"] == 1 and kinds[i]["created"] == 1 and kinds[i]["retry_scheduled"] == 0
        assert kinds[i]["running"] == 1 + kinds[i]["agent_unreachable"] and kinds[i]["agent_unreachable"] <= 1


def test_agent_down_past_the_wait_ends_in_error(cluster: Stack, client: httpx.Client, service: httpx.Client) -> None:
    register_agent(service, "dead", f"http://127.0.0.1:{free_port()}", ["dead.echo"], limits={"dead.echo": {"maxAttempts": 3, "backoffMs": 100}})
    corr = unique("dead")
    ids = [create(client, "dead.echo", {"i": i}, correlationId=corr)["id"] for i in range(3)]
    wait_all(cluster.database_url, corr, len(ids), status="error", timeout=AGENT_WAIT_S + 30)
    for i in ids:
        body = fetch(client, i)
        task = body["task"]
        assert set(task["error"]) == {"message", "attempts"}
        assert task["error"]["attempts"] == 0 == task["attempts"]  # waiting spent no attempt
        assert task["error"]["message"] == f"agent dead unreachable for more than {AGENT_WAIT_S}s (OPSLOOP_AGENT_WAIT_S)"
        assert task["result"] is None and task["finished_at"] and task["lease_owner"] is None
        kinds = [e["kind"] for e in body["events"]]
        assert kinds in (["created", "running", "agent_unreachable", "error"], ["created", "error"]), kinds
        waited = (datetime.fromisoformat(task["finished_at"]) - datetime.fromisoformat(task["created_at"])).total_seconds()
        assert waited >= AGENT_WAIT_S, f"ended after {waited:.1f}s, before the {AGENT_WAIT_S}s wait"


def test_per_type_timeout_is_retried_then_error(cluster: Stack, client: httpx.Client, service: httpx.Client) -> None:
    register_agent(
        service, "sluggish", cluster.echo.url, ["sluggish.echo"], limits={"sluggish.echo": {"maxAttempts": 2, "timeoutMs": 300, "backoffMs": 100}}
    )
    created = create(client, "sluggish.echo", {"sleepMs": 3000})
    task = wait_status(client, created["id"], ("error",), timeout=20)["task"]
    assert task["error"] == {"message": "agent sluggish timed out after 0.3s", "attempts": 2}
    # The same agent answers quick tasks of that type within the limit.
    quick = create(client, "sluggish.echo", {"sleepMs": 10})
    assert wait_status(client, quick["id"])["task"]["attempts"] == 1


def test_agent_refusal_is_not_retried(cluster: Stack, client: httpx.Client, service: httpx.Client) -> None:
    register_agent(service, "picky", cluster.echo.url, ["picky.echo"], endpoint="/no-such-route", limits={"picky.echo": {"maxAttempts": 5}})
    created = create(client, "picky.echo", {"x": 1})
    body = wait_status(client, created["id"], ("error",))
    assert body["task"]["attempts"] == 1 and body["task"]["error"]["attempts"] == 1
    assert "refused" in body["task"]["error"]["message"] and "404" in body["task"]["error"]["message"]
    assert [e["kind"] for e in body["events"]] == ["created", "running", "error"]


def test_cancel_running_task_ignores_its_late_answer(cluster: Stack, client: httpx.Client) -> None:
    created = create(client, "echo", {"sleepMs": 3000})
    running = wait_status(client, created["id"], ("running",))["task"]
    resp = client.post(f"/task/{created['id']}/cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json()["task"]["status"] == "cancelled"

    def agent_lines() -> set[str] | None:
        logs = client.get("/logs", params={"taskId": created["id"]}).json()["logs"]
        lines = {entry["message"] for entry in logs}
        return lines if {"task cancelled by the orchestrator", "ECHO_CANCELLED", "ECHO_RESPONSE"} <= lines else None

    wait_for(agent_lines, timeout=10, what="the agent told of the cancel and answering early")
    body = fetch(client, created["id"])
    assert body["task"]["status"] == "cancelled" and body["task"]["result"] is None
    assert body["task"]["version"] == running["version"] + 1
    assert [e["kind"] for e in body["events"]] == ["created", "running", "cancelled"]
    assert body["events"][-1]["data"] == {"status": "cancelled", "from": "running"}

    # A cancelled task can be queued again, and then it runs to the end.
    assert client.post(f"/task/{created['id']}/retry").status_code == 200
    done = wait_status(client, created["id"], timeout=15)
    assert done["task"]["result"]["output"]["received"] == {"sleepMs": 3000}
    assert [e["kind"] for e in done["events"]] == ["created", "running", "cancelled", "retried", "running", "done"]


def test_task_longer_than_its_lease_keeps_it(client: httpx.Client) -> None:
    """The lease is renewed while the agent works: no reclaim, no second attempt."""
    created = create(client, "echo", {"sleepMs": int(LEASE_S * 2000)})
    body = wait_status(client, created["id"], timeout=20)
    assert body["task"]["attempts"] == 1
    assert [e["kind"] for e in body["events"]] == ["created", "running", "done"]


def test_kill_instance_while_tasks_run(cluster: Stack, client: httpx.Client) -> None:
    """kill -9 the only instance with 8 tasks running and 12 queued; another instance (on the same
    port, a new instance id) re-claims the running ones once their leases expire and runs the rest.
    Every task ends done exactly once; the interrupted ones took two attempts. Runs last: it
    replaces the module's app instance."""
    corr = unique("kill")
    # Each attempt takes 4 s, far longer than creating the tasks and seeing 8 of them run: none can
    # finish between that snapshot and the kill, so the snapshot is exactly what the kill interrupts.
    ids = [create(client, "echo", {"i": i, "sleepMs": SLOW_MS}, correlationId=corr)["id"] for i in range(20)]
    victim_rows = wait_for(
        lambda: (
            (rows := query(cluster.database_url, "SELECT id::text, lease_owner FROM tasks WHERE correlation_id = %s AND status = 'running'", (corr,)))
            and len(rows) == 8
            and rows
        ),
        timeout=20,
        what="8 tasks running on the instance",
    )
    victim = {r["lease_owner"] for r in victim_rows}
    assert len(victim) == 1
    interrupted = {r["id"] for r in victim_rows}
    cluster.app.kill(signal.SIGKILL)

    successor = app_instance(
        cluster.database_url, name="failures-app-2", port=int(cluster.app.url.rsplit(":", 1)[1]), OPSLOOP_LEASE_S=str(LEASE_S)
    ).start()
    cluster.app = successor  # the module's teardown stops it
    wait_all(cluster.database_url, corr, len(ids), timeout=60)

    kinds = event_kinds(cluster.database_url, corr)
    rows = query(cluster.database_url, "SELECT id::text, attempts, result, error FROM tasks WHERE correlation_id = %s", (corr,))
    assert len(rows) == len(ids)
    for row in rows:
        k = kinds[row["id"]]
        assert k["done"] == 1, (row["id"], k)
        assert k["running"] == row["attempts"], (row["id"], k)
        assert row["result"]["output"]["received"]["sleepMs"] == SLOW_MS and row["error"] is None
        if row["id"] in interrupted:
            assert row["attempts"] == 2 and k["lease_expired"] == 1, (row["id"], k)
        else:
            assert row["attempts"] == 1 and k["lease_expired"] == 0, (row["id"], k)
    owners = query(
        cluster.database_url,
        "SELECT DISTINCT e.data->>'instance' AS owner FROM task_events e JOIN tasks t ON t.id = e.task_id "
        "WHERE t.correlation_id = %s AND e.kind = 'running' AND e.data->>'attempt' = '2'",
        (corr,),
    )
    assert owners and victim.isdisjoint({o["owner"] for o in owners}), "the second attempts ran on the successor"

    # The agent's log lines, held while no instance listened, arrive once the successor is up.
    def logged() -> bool:
        (row,) = query(
            cluster.database_url,
            "SELECT count(DISTINCT task_id) AS n FROM logs WHERE message = 'ECHO_RESPONSE' AND task_id = ANY(%s::uuid[])",
            (ids,),
        )
        return row["n"] == len(ids)

    wait_for(logged, timeout=20, what="ECHO_RESPONSE stored for every task")
