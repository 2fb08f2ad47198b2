"""Logging over HTTP against a real app instance: 10,000 lines sent in batches and singly at the
same time are each stored once and found by every filter of `GET /logs` and by `q`; bad input is a
4xx naming the field (and the entry's index) with nothing written; and on a database with enough
rows, EXPLAIN shows an index serving every filter of `GET /logs` and `GET /task/events`."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from opsloop.backend.logs.repository import search_logs
from opsloop.backend.tasks.store import EventFilter, TaskStore
from tests.conftest import Stack
from tests.support.database import fresh_database
from tests.support.processes import INTERNAL_KEY, PASSWORD, USER
from tests.support.tasks import query, unique

LEVELS = ("debug", "info", "warn", "error")
TOTAL = 10_000
BATCHED = 5_000  # lines 0..4999 go in batches of BATCH, the rest one per request
BATCH = 250


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as c:
        yield c


def entry(run: str, i: int, task_ids: list[str]) -> dict[str, Any]:
    """Line `i` of a run: every filter value spreads the lines over a few known groups."""
    return {
        "service": f"{run}-svc{i % 5}",
        "level": LEVELS[i % 4],
        "message": f"{run} line {i:05d}",
        "data": {"i": i, "run": run},
        "taskId": task_ids[i % 3],
        "correlationId": f"{run}-c{i % 8}",
        "traceId": f"{run}-t{i % 16}",
    }


def fetch_all(client: httpx.Client, params: dict[str, Any], run: str | None = None) -> list[int]:
    """Every page of GET /logs for `params` (limit 500, cursor); the line numbers of `run`'s rows,
    newest first. Checks the pages are newest first and never repeat a row."""
    out: list[int] = []
    ids: list[int] = []
    cursor = None
    while True:
        resp = client.get("/logs", params={**params, "limit": 500, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        for row in body["logs"]:
            ids.append(row["id"])
            if run is None or (isinstance(row["data"], dict) and row["data"].get("run") == run):
                out.append(row["data"]["i"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids), "pages must be newest first, without repeats"
    return out


@pytest.fixture(scope="module")
def ten_thousand(stack: Stack) -> dict[str, Any]:
    """10,000 lines: half in batches of 250, half one per request, all at once from 8 threads."""
    run = unique("logs")
    task_ids = [str(uuid.uuid4()) for _ in range(3)]
    lines = [entry(run, i, task_ids) for i in range(TOTAL)]
    jobs: list[Any] = [lines[s : s + BATCH] for s in range(0, BATCHED, BATCH)] + lines[BATCHED:]
    jobs = [jobs[k] for k in sorted(range(len(jobs)), key=lambda k: (k * 7919) % len(jobs))]  # interleave batches and singles
    local = threading.local()

    def post(body: Any) -> int:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=stack.url, headers={"X-Internal-Key": INTERNAL_KEY}, timeout=30)
        resp = local.client.post("/log", json=body)
        assert resp.status_code == 202, resp.text
        got = resp.json()
        if isinstance(body, list):
            assert got["count"] == len(body) and len(got["logs"]) == len(body)
            return got["count"]
        assert got["log"]["message"] == body["message"] and got["log"]["task_id"] == body["taskId"]
        return 1

    with ThreadPoolExecutor(8) as pool:
        sent = sum(pool.map(post, jobs))
    assert sent == TOTAL
    return {"run": run, "task_ids": task_ids, "lines": lines}


def expected(pred: Any) -> list[int]:
    return sorted(i for i in range(TOTAL) if pred(i))


def test_every_line_stored_once(stack: Stack, ten_thousand: dict[str, Any]) -> None:
    rows = query(
        stack.database_url,
        "SELECT (data->>'i')::int AS i, count(*) AS n, min(service) AS service, min(level) AS level, min(trace_id) AS trace "
        "FROM logs WHERE data->>'run' = %s GROUP BY 1",
        (ten_thousand["run"],),
    )
    assert len(rows) == TOTAL
    assert {r["n"] for r in rows} == {1}, "a line was stored twice"
    run = ten_thousand["run"]
    for r in rows:
        assert (r["service"], r["level"], r["trace"]) == (f"{run}-svc{r['i'] % 5}", LEVELS[r["i"] % 4], f"{run}-t{r['i'] % 16}")


def test_found_by_each_filter(client: httpx.Client, ten_thousand: dict[str, Any]) -> None:
    run, task_ids = ten_thousand["run"], ten_thousand["task_ids"]
    for k in range(5):
        assert sorted(fetch_all(client, {"service": f"{run}-svc{k}"})) == expected(lambda i, k=k: i % 5 == k)
    for k, level in enumerate(LEVELS):
        # other tests' lines share the level: keep this run's
        assert sorted(fetch_all(client, {"level": level, "service": f"{run}-svc{k}"})) == expected(lambda i, k=k: i % 4 == k and i % 5 == k)
    for k in (0, 3):
        assert sorted(fetch_all(client, {"corrId": f"{run}-c{k}"})) == expected(lambda i, k=k: i % 8 == k)
        assert sorted(fetch_all(client, {"correlationId": f"{run}-c{k}"})) == expected(lambda i, k=k: i % 8 == k)
    for k in (1, 15):
        assert sorted(fetch_all(client, {"traceId": f"{run}-t{k}"})) == expected(lambda i, k=k: i % 16 == k)
    for k, task_id in enumerate(task_ids):
        assert sorted(fetch_all(client, {"taskId": task_id})) == expected(lambda i, k=k: i % 3 == k)
    level_only = fetch_all(client, {"level": "error"}, run=run)
    assert sorted(level_only) == expected(lambda i: i % 4 == 3)


def test_found_by_since_and_until(stack: Stack, client: httpx.Client, ten_thousand: dict[str, Any]) -> None:
    run = ten_thousand["run"]
    rows = query(stack.database_url, "SELECT (data->>'i')::int AS i, ts FROM logs WHERE data->>'run' = %s ORDER BY ts", (run,))
    since, until = rows[len(rows) // 3]["ts"], rows[2 * len(rows) // 3]["ts"]
    assert since < until, "the lines should span some time"
    by_ts = {r["i"]: r["ts"] for r in rows}
    want_since = sorted(i for i, ts in by_ts.items() if ts >= since)
    want_window = sorted(i for i, ts in by_ts.items() if since <= ts < until)
    assert sorted(fetch_all(client, {"since": since.isoformat()}, run=run)) == want_since
    assert sorted(fetch_all(client, {"since": since.isoformat(), "until": until.isoformat(), "traceId": f"{run}-t3"})) == [
        i for i in want_window if i % 16 == 3
    ]
    millis = int(until.timestamp() * 1000)  # the earlier system's epoch-milliseconds form
    cut = datetime.fromtimestamp(millis / 1000, tz=UTC)
    assert sorted(fetch_all(client, {"until": str(millis), "service": f"{run}-svc2"})) == sorted(
        i for i, ts in by_ts.items() if ts < cut and i % 5 == 2
    )


def test_found_by_text_search(client: httpx.Client, ten_thousand: dict[str, Any]) -> None:
    run = ten_thousand["run"]
    assert sorted(fetch_all(client, {"q": f"{run} line 0012"})) == list(range(120, 130))
    assert sorted(fetch_all(client, {"q": f"{run.upper()} LINE 0934"})) == list(range(9340, 9350)), "q is case-insensitive"
    assert fetch_all(client, {"q": f"{run} line 0012%"}) == [], "% in q is a literal, not a wildcard"
    assert fetch_all(client, {"q": f"{run} line 0_012"}) == [], "_ in q is a literal, not a wildcard"
    assert sorted(fetch_all(client, {"q": run})) == list(range(TOTAL))


def test_text_search_matches_the_whole_pattern(client: httpx.Client) -> None:
    """A several-word `q` is looked up by one of its words; the answer is still exactly the lines
    that contain the whole of `q` (case-insensitive), separators included."""
    run = unique("q").replace("-", "")
    messages = {
        "a": f"GET /{run}/items/2345 a",
        "b": f"GET /{run}/items/12345 b",
        "c": f"GET /{run}/items/2345x c",
        "d": f"GET /{run}/item/2345 d",
        "e": f"GET /{run}/ITEMS/2345 e",
        "f": f"GET /{run}/items/2345",
        "g": f"GET /{run}-items/2345 g",
    }
    resp = client.post("/log", json=[{"service": "q-test", "message": m, "data": {"k": k}} for k, m in messages.items()])
    assert resp.status_code == 202, resp.text

    def found(q: str) -> set[str]:
        body = client.get("/logs", params={"q": q, "limit": 500}).json()
        return {row["data"]["k"] for row in body["logs"]}

    assert found(f"{run}/items/2345 ") == {"a", "e"}
    assert found(f"/{run}/items/2345") == {"a", "c", "e", "f"}
    assert found(f"items/2345 {run}") == set()
    assert found(f"{run}") == set(messages)


def test_limit_and_paging(client: httpx.Client, ten_thousand: dict[str, Any]) -> None:
    run = ten_thousand["run"]
    resp = client.get("/logs", params={"traceId": f"{run}-t5"})
    body = resp.json()
    assert len(body["logs"]) == 100 and body["next_cursor"], "default limit is 100"
    resp = client.get("/logs", params={"traceId": f"{run}-t5", "limit": 1000})
    assert resp.status_code == 400 and "limit" in resp.json()["error"]


# -- validation -----------------------------------------------------------------------------


def _post(client: httpx.Client, body: Any = None, *, content: bytes | None = None) -> httpx.Response:
    if content is not None:
        return client.post("/log", content=content, headers={"content-type": "application/json"})
    return client.post("/log", json=body)


GOOD = {"service": "validation", "message": "fine"}
BAD_CASES: list[tuple[str, Any, list[str]]] = [
    ("bad level", {**GOOD, "level": "fatal"}, ["level"]),
    ("bad level in batch", [GOOD, GOOD, {**GOOD, "level": "WARN"}], ["entry 2", "level"]),
    ("level not a string", {**GOOD, "level": 3}, ["level"]),
    ("taskId not a UUID", {**GOOD, "taskId": "not-a-uuid"}, ["taskId"]),
    ("taskId dashes only", [GOOD, {**GOOD, "taskId": "-" * 36}], ["entry 1", "taskId"]),
    ("taskId a number", [GOOD, {**GOOD, "taskId": 12345}], ["entry 1", "taskId"]),
    ("traceId a number", [GOOD, GOOD, GOOD, {**GOOD, "traceId": 7}], ["entry 3", "traceId"]),
    ("correlationId an object", {**GOOD, "correlationId": {"a": 1}}, ["correlationId"]),
    ("service missing", [GOOD, {"message": "x"}], ["entry 1", "service"]),
    ("message empty", {**GOOD, "message": ""}, ["message"]),
    ("message too long", [{**GOOD, "message": "x" * 40_000}], ["entry 0", "message"]),
    ("entry not an object", [GOOD, "just text"], ["entry 1"]),
    ("empty array", [], ["empty"]),
    ("too many entries", [GOOD] * 5001, ["5000"]),
    ("NUL in message", [GOOD, {**GOOD, "message": "a\u0000b"}], ["entry 1", "message", "NUL"]),
    ("NUL in data", {**GOOD, "data": {"k": ["\u0000"]}}, ["data", "NUL"]),
    ("a JSON string", "hello", ["object"]),
]


@pytest.mark.parametrize(("name", "body", "words"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_entries_are_400_naming_the_field(stack: Stack, client: httpx.Client, name: str, body: Any, words: list[str]) -> None:
    before = query(stack.database_url, "SELECT count(*) AS n FROM logs WHERE service = 'validation'")[0]["n"]
    resp = _post(client, body)
    assert resp.status_code == 400, f"{name}: {resp.status_code} {resp.text[:300]}"
    message = resp.json()["error"]
    for word in words:
        assert word.lower() in message.lower(), f"{name}: {message!r} should mention {word!r}"
    after = query(stack.database_url, "SELECT count(*) AS n FROM logs WHERE service = 'validation'")[0]["n"]
    assert after == before, f"{name}: nothing may be written"


def test_non_json_and_oversized_bodies(client: httpx.Client) -> None:
    resp = _post(client, content=b"{not json")
    assert resp.status_code == 400 and "JSON" in resp.json()["error"]
    resp = _post(client, content=b"")
    assert resp.status_code == 400 and "empty" in resp.json()["error"]
    big = json.dumps([{**GOOD, "message": "y" * 30_000}] * 40).encode()  # > MAX_BODY_BYTES (1 MiB)
    resp = _post(client, content=big)
    assert resp.status_code == 413 and "too large" in resp.json()["error"]


def test_good_single_and_batch_answers(client: httpx.Client) -> None:
    run = unique("shape")
    task_id = str(uuid.uuid4()).upper()  # any UUID spelling is accepted, stored canonical
    resp = _post(client, {"service": run, "message": "one", "taskId": task_id, "data": {"nested": [1, {"x": None}]}})
    assert resp.status_code == 202, resp.text
    log = resp.json()["log"]
    assert log["level"] == "info" and log["task_id"] == task_id.lower() and log["data"] == {"nested": [1, {"x": None}]}
    assert set(log) >= {"id", "ts", "service", "level", "message", "data", "task_id", "correlation_id", "trace_id"}
    resp = _post(client, [{"service": run, "message": f"m{i}", "level": "debug"} for i in range(3)])
    assert resp.status_code == 202 and resp.json()["count"] == 3 and len(resp.json()["logs"]) == 3


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"level": "fatal"}, "level"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": "soon"}, "until"),
        ({"taskId": "nope"}, "taskId"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": "WyJ4Il0"}, "cursor"),  # a well-formed cursor holding a string id
    ],
)
def test_bad_queries_are_400(client: httpx.Client, params: dict[str, str], word: str) -> None:
    resp = client.get("/logs", params=params)
    assert resp.status_code == 400, resp.text
    assert word in resp.json()["error"]


def test_ingest_needs_credentials(stack: Stack) -> None:
    assert httpx.post(stack.url + "/log", json=GOOD).status_code == 401
    assert httpx.post(stack.url + "/log", json=GOOD, auth=(USER, PASSWORD + "x")).status_code == 401
    assert httpx.get(stack.url + "/logs").status_code == 401


# -- every filter is served by an index ---------------------------------------------------

EXPLAIN_DATA = """
INSERT INTO tasks (id, type, source, trace_id, correlation_id)
SELECT md5('t' || k)::uuid, 'echo', 'explain', 'tr-' || k, 'co-' || (k % 500) FROM generate_series(1, 2000) k;
INSERT INTO task_events (task_id, actor, kind, correlation_id, trace_id, ts)
SELECT md5('t' || (g % 2000 + 1))::uuid, 'actor-' || (g % 100), 'kind-' || (g % 97), 'co-' || (g % 500), 'tr-' || (g % 2000 + 1),
       now() - make_interval(secs => (60000 - g) * 40)
FROM generate_series(1, 60000) g;
INSERT INTO logs (ts, service, level, message, task_id, correlation_id, trace_id)
SELECT now() - make_interval(secs => (150000 - g) * 17), 'svc-' || (g % 100),
       CASE WHEN g % 100 = 0 THEN 'error' WHEN g % 10 = 1 THEN 'warn' WHEN g % 10 = 2 THEN 'debug' ELSE 'info' END,
       'line ' || g || ' ' || md5(g::text), md5('t' || (g % 2000 + 1))::uuid, 'co-' || (g % 500), 'tr-' || (g % 2000 + 1)
FROM generate_series(1, 150000) g;
ANALYZE;
"""


class _Capture:
    """Stands in for the pool: records the SQL a repository function would run."""

    def __init__(self) -> None:
        self.sql = ""
        self.params: Any = None

    def connection(self) -> _Capture:
        return self

    async def __aenter__(self) -> _Capture:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self, sql: str, params: Any = None) -> _Capture:
        self.sql, self.params = sql, params
        return self

    async def fetchall(self) -> list[Any]:
        return []


async def list_events(pool: Any, *, limit: int, **filters: Any) -> Any:
    """The task store's event listing, over the capturing pool."""
    return await TaskStore(pool).list_events(EventFilter(**filters), limit=limit)


def captured(fn: Any, **filters: Any) -> tuple[str, Any]:
    cap = _Capture()
    asyncio.run(fn(cap, **filters))
    return cap.sql, cap.params


def plan_nodes(conn: psycopg.Connection, sql: str, params: Any) -> list[dict[str, Any]]:
    cur = psycopg.ClientCursor(conn)
    cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
    (plan,) = cur.fetchone()
    nodes: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        nodes.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"])
    return nodes


@pytest.fixture(scope="module")
def explain_db() -> Iterator[str]:
    from opsloop.backend.db import upgrade_database

    with fresh_database("opsloop_explain") as url:
        upgrade_database(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(EXPLAIN_DATA)
        yield url


NOW = datetime.now(UTC)
LOG_FILTERS: list[tuple[str, dict[str, Any], set[str]]] = [
    ("service", {"service": "svc-42"}, {"logs_service_idx"}),
    ("level", {"level": "error"}, {"logs_level_idx"}),
    ("corrId", {"correlation_id": "co-7"}, {"logs_correlation_idx"}),
    ("traceId", {"trace_id": "tr-77"}, {"logs_trace_idx"}),
    ("taskId", {"task_id": uuid.UUID("a5a1b1b8-11f1-1e1e-0c6d-5c2c8b0d7b4d")}, {"logs_task_idx"}),
    ("since", {"since": NOW - timedelta(hours=1)}, {"logs_ts_idx", "logs_pkey"}),
    # `until` alone: newest first by id, PostgreSQL may walk the primary key backwards (it cannot
    # know ids and timestamps grow together); slow only for an `until` far in the past.
    ("until", {"until": NOW - timedelta(days=27)}, {"logs_ts_idx", "logs_pkey"}),
    ("since+until", {"since": NOW - timedelta(days=10), "until": NOW - timedelta(days=10) + timedelta(hours=2)}, {"logs_ts_idx"}),
    ("level+since", {"level": "error", "since": NOW - timedelta(hours=6)}, {"logs_level_idx", "logs_ts_idx"}),
    ("q", {"q": "c4ca4238a0b9"}, {"logs_message_trgm_idx"}),
    ("q words", {"q": "line 12345 c4"}, {"logs_message_trgm_idx"}),
    # a phrase of common words: most rows match, newest first by the primary key is quickest
    ("q common", {"q": "line 1"}, {"logs_pkey"}),
    ("cursor", {"service": "svc-3", "cursor": "WzEwMDAwMF0"}, {"logs_service_idx"}),
]
EVENT_FILTERS: list[tuple[str, dict[str, Any], set[str]]] = [
    ("taskId", {"task_id": uuid.UUID("a5a1b1b8-11f1-1e1e-0c6d-5c2c8b0d7b4d")}, {"task_events_task_idx"}),
    ("traceId", {"trace_id": "tr-5"}, {"task_events_trace_idx"}),
    ("corrId", {"correlation_id": "co-9"}, {"task_events_correlation_idx"}),
    ("actor", {"actor": "actor-3"}, {"task_events_actor_idx"}),
    ("kind", {"kind": "kind-11"}, {"task_events_kind_idx"}),
    ("since", {"since": NOW - timedelta(hours=1)}, {"task_events_ts_idx", "task_events_pkey"}),
    ("until", {"until": NOW - timedelta(days=25)}, {"task_events_ts_idx", "task_events_pkey"}),
]


def _check_plan(url: str, sql: str, params: Any, table: str, allowed: set[str]) -> None:
    with psycopg.connect(url) as conn:
        nodes = plan_nodes(conn, sql, params)
    seq = [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == table]
    used = {n["Index Name"] for n in nodes if "Index Name" in n}
    summary = [(n["Node Type"], n.get("Index Name") or n.get("Relation Name")) for n in nodes]
    assert not seq, f"sequential scan of {table}: {summary}"
    assert used & allowed, f"expected one of {allowed}, plan used {summary}"


@pytest.mark.parametrize(("name", "filters", "allowed"), LOG_FILTERS, ids=[f[0] for f in LOG_FILTERS])
def test_logs_filter_uses_an_index(explain_db: str, name: str, filters: dict[str, Any], allowed: set[str]) -> None:
    sql, params = captured(search_logs, limit=100, **filters)
    _check_plan(explain_db, sql, params, "logs", allowed)


@pytest.mark.parametrize(("name", "filters", "allowed"), EVENT_FILTERS, ids=[f[0] for f in EVENT_FILTERS])
def test_task_events_filter_uses_an_index(explain_db: str, name: str, filters: dict[str, Any], allowed: set[str]) -> None:
    sql, params = captured(list_events, limit=100, **filters)
    _check_plan(explain_db, sql, params, "task_events", allowed)
