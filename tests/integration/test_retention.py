"""Retention: log lines and task events older than LOG_RETENTION_DAYS are deleted in batches,
each batch its own short transaction, and nothing newer is touched. Triggered through the
internal-key-only `POST /admin/retention` (the same job APScheduler runs hourly), and the
batching checked in-process against the test database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from opsloop.backend.db import make_pool
from opsloop.backend.retention import purge
from tests.conftest import Stack
from tests.support.processes import INTERNAL_KEY, PASSWORD, USER, wait_for
from tests.support.tasks import create, query, unique

OLD_LOGS = """
INSERT INTO logs (ts, service, level, message)
SELECT now() - interval '40 days' - make_interval(secs => g), %(service)s, 'info', 'old line ' || g FROM generate_series(1, %(n)s) g
"""
NEW_LOGS = "INSERT INTO logs (service, message) SELECT %(service)s, 'recent line ' || g FROM generate_series(1, %(n)s) g"
OLD_EVENTS = """
INSERT INTO task_events (task_id, actor, kind, ts)
SELECT %(task)s, 'retention-test', 'old', now() - interval '40 days' - make_interval(secs => g) FROM generate_series(1, %(n)s) g
"""


def run_sql(url: str, sql: str, params: dict[str, object]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params)


def count(url: str, sql: str, params: tuple[object, ...]) -> int:
    return query(url, sql, params)[0]["n"]


@pytest.fixture(scope="module")
def service(stack: Stack) -> Iterator[httpx.Client]:
    with stack.service_client() as c:
        yield c


def test_retention_route_deletes_old_rows_only(stack: Stack, service: httpx.Client) -> None:
    url = stack.database_url
    name = unique("retention")
    with stack.client() as client:
        task_id = create(client, "echo", {"retention": True})["id"]
    run_sql(url, OLD_LOGS, {"service": name, "n": 7000})
    run_sql(url, NEW_LOGS, {"service": name, "n": 25})
    run_sql(url, OLD_EVENTS, {"task": task_id, "n": 300})
    recent_events = count(url, "SELECT count(*) AS n FROM task_events WHERE task_id = %s AND kind <> 'old'", (task_id,))
    assert recent_events >= 1

    resp = service.post("/admin/retention")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["retentionDays"] == 30
    assert body["deleted"]["logs"] >= 7000 and body["deleted"]["task_events"] >= 300
    assert count(url, "SELECT count(*) AS n FROM logs WHERE service = %s AND ts < now() - interval '30 days'", (name,)) == 0
    assert count(url, "SELECT count(*) AS n FROM logs WHERE service = %s", (name,)) == 25, "recent lines stay"
    assert count(url, "SELECT count(*) AS n FROM task_events WHERE task_id = %s AND kind = 'old'", (task_id,)) == 0
    assert count(url, "SELECT count(*) AS n FROM task_events WHERE task_id = %s", (task_id,)) == recent_events, "recent events stay"
    report = wait_for(
        lambda: query(
            url, "SELECT data FROM logs WHERE service = 'opsloop' AND message = 'retention deleted old rows' AND ts > now() - interval '1 minute'"
        ),
        what="the job's own log line",
    )
    assert report[-1]["data"]["logs"] >= 7000, "the job reports what it deleted"

    again = service.post("/admin/retention").json()
    assert again["deleted"] == {"logs": 0, "task_events": 0}


def test_retention_route_is_internal_key_only(stack: Stack) -> None:
    assert httpx.post(stack.url + "/admin/retention", timeout=10).status_code == 401
    assert httpx.post(stack.url + "/admin/retention", auth=(USER, PASSWORD), timeout=10).status_code == 403
    assert httpx.post(stack.url + "/admin/retention", headers={"X-Internal-Key": INTERNAL_KEY + "x"}, timeout=10).status_code == 401


def test_deletes_in_batches_each_committed_on_its_own(stack: Stack) -> None:
    url = stack.database_url
    name = unique("batches")
    run_sql(url, OLD_LOGS, {"service": name, "n": 12_345})
    run_sql(url, NEW_LOGS, {"service": name, "n": 10})
    old_sql = "SELECT count(*) AS n FROM logs WHERE service = %s AND ts < now() - interval '35 days'"
    batches: list[int] = []
    remaining: list[int] = []

    def on_batch(deleted: int) -> None:
        batches.append(deleted)
        remaining.append(count(url, old_sql, (name,)))  # seen from another connection: already committed

    async def run() -> int:
        pool = make_pool(url, min_size=1, max_size=2, name="retention-test")
        await pool.open(wait=True)
        try:
            return await purge(pool, "logs", datetime.now(UTC) - timedelta(days=35), batch=5000, on_batch=on_batch)
        finally:
            await pool.close()

    deleted = asyncio.run(run())
    assert deleted == sum(batches) >= 12_345
    assert len(batches) >= 3 and all(b == 5000 for b in batches[:-1]) and batches[-1] < 5000
    assert remaining[0] == 12_345 - 5000 and remaining[1] == 12_345 - 10_000 and remaining[-1] == 0, remaining
    assert count(url, "SELECT count(*) AS n FROM logs WHERE service = %s", (name,)) == 10


def test_only_logs_and_events_can_be_purged() -> None:
    with pytest.raises(ValueError):
        asyncio.run(purge(None, "tasks", datetime.now(UTC)))  # type: ignore[arg-type]
