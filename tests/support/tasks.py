"""Task test helpers: create over HTTP, wait for outcomes, and read the tables directly.

Counting rows and events goes straight to PostgreSQL (one query instead of thousands of GETs),
so assertions about "nothing written" and "exactly once" read the source of truth.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from tests.support.processes import wait_for

TERMINAL = ("done", "error", "cancelled")


def unique(prefix: str) -> str:
    """A correlation id (or type suffix) no other test uses, so filters see only this test's rows."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create(client: httpx.Client, type: str = "echo", payload: Any = None, *, source: str = "tests", **fields: Any) -> dict[str, Any]:
    """POST /task and return its 202 body (fails the test on any other status)."""
    body = {"type": type, "source": source, **fields}
    if payload is not None:
        body["payload"] = payload
    resp = client.post("/task", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()


def fetch(client: httpx.Client, task_id: str) -> dict[str, Any]:
    """GET /task/{id}: `{task, events}`."""
    resp = client.get(f"/task/{task_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_status(client: httpx.Client, task_id: str, statuses: Iterable[str] = ("done",), timeout: float = 20.0) -> dict[str, Any]:
    """Poll GET /task/{id} until its status is one of `statuses`; returns `{task, events}`."""
    wanted = tuple(statuses)

    def probe() -> dict[str, Any] | None:
        body = fetch(client, task_id)
        return body if body["task"]["status"] in wanted else None

    return wait_for(probe, timeout=timeout, interval=0.05, what=f"task {task_id} to be {'/'.join(wanted)}")


def query(database_url: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def counts(database_url: str) -> dict[str, int]:
    """Rows in the task tables: compared before and after a refused request."""
    (row,) = query(database_url, "SELECT (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM task_events) AS task_events")
    return dict(row)


def wait_quiet(database_url: str, timeout: float = 30.0) -> None:
    """Until no task is running or due: nothing in flight can add rows while a test counts them."""

    def quiet() -> bool:
        (row,) = query(
            database_url,
            "SELECT count(*) AS n FROM tasks WHERE status = 'running' OR (status = 'queued' AND run_after <= now() + interval '2 seconds')",
        )
        return row["n"] == 0

    wait_for(quiet, timeout=timeout, what="no task in flight")


def statuses(database_url: str, correlation_id: str) -> Counter[str]:
    rows = query(database_url, "SELECT status, count(*) AS n FROM tasks WHERE correlation_id = %s GROUP BY status", (correlation_id,))
    return Counter({r["status"]: r["n"] for r in rows})


def wait_all(database_url: str, correlation_id: str, total: int, status: str = "done", timeout: float = 60.0) -> None:
    """Until all `total` tasks of a correlation id have `status` (fails early if one ends otherwise)."""

    def done() -> bool:
        seen = statuses(database_url, correlation_id)
        wrong = {s: n for s, n in seen.items() if s in TERMINAL and s != status}
        if wrong:
            sample = query(
                database_url, "SELECT id, status, error FROM tasks WHERE correlation_id = %s AND status <> %s LIMIT 3", (correlation_id, status)
            )
            raise AssertionError(f"tasks ended {wrong} while waiting for {status}: {sample}")
        return seen[status] == total

    wait_for(done, timeout=timeout, interval=0.2, what=f"{total} tasks of {correlation_id} to be {status}")


def event_kinds(database_url: str, correlation_id: str) -> dict[str, Counter[str]]:
    """Per task of a correlation id: how many events of each kind it has."""
    rows = query(
        database_url,
        """SELECT t.id::text AS id, e.kind, count(e.id) AS n FROM tasks t LEFT JOIN task_events e ON e.task_id = t.id
           WHERE t.correlation_id = %s GROUP BY t.id, e.kind""",
        (correlation_id,),
    )
    out: dict[str, Counter[str]] = {}
    for r in rows:
        out.setdefault(r["id"], Counter())[r["kind"]] += r["n"]
    return out


def register_agent(
    service: httpx.Client,
    slug: str,
    url: str,
    task_types: list[str],
    *,
    endpoint: str = "/echo",
    limits: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """Register an agent entry by hand (the internal-key route every agent uses), e.g. another
    type served by the echo process, or one whose URL nobody listens on."""
    body = {"slug": slug, "url": url, "taskTypes": task_types, "endpoint": endpoint, "limits": limits or {}}
    resp = service.post("/agents/register", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["agent"]


def wait_registered(client: httpx.Client, slug: str, url: str, timeout: float = 15.0) -> None:
    """Until the registry lists agent `slug` at `url` (an agent registers itself at start)."""
    wait_for(
        lambda: any(a["slug"] == slug and a["url"] == url for a in client.get("/agents").json()["agents"]),
        timeout=timeout,
        what=f"agent {slug} registered at {url}",
    )
