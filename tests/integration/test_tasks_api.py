"""The orchestrator's REST contract (SPEC section 3) against a real app instance and echo agent:
lifecycle, idempotency, listing and paging, optimistic PATCH, cancel and retry, task events, and
refusals (4xx with `{error}`, nothing written, never a 500)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
import pytest

from tests.conftest import Stack
from tests.support.processes import free_port, wait_for
from tests.support.tasks import counts, create, fetch, query, register_agent, unique, wait_quiet, wait_status


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as c:
        yield c


@pytest.fixture(scope="module")
def service(stack: Stack) -> Iterator[httpx.Client]:
    with stack.service_client() as c:
        yield c


@pytest.fixture(scope="module")
def alt_type(stack: Stack, service: httpx.Client) -> str:
    """A second task type, served by the same echo process under another agent entry."""
    register_agent(service, "echo-alt", stack.echo.url, ["echo.alt"])
    return "echo.alt"


@pytest.fixture(scope="module")
def parked_type(service: httpx.Client) -> str:
    """A type whose agent is down: its tasks wait for it, `queued`, for minutes (OPSLOOP_AGENT_WAIT_S),
    so cancel and retry see a queued task deterministically."""
    register_agent(
        service, "parked", f"http://127.0.0.1:{free_port()}", ["parked.echo"], limits={"parked.echo": {"maxAttempts": 5, "backoffMs": 600_000}}
    )
    return "parked.echo"


@pytest.fixture(scope="module")
def failing_type(stack: Stack, service: httpx.Client) -> str:
    """A type whose agent refuses every task (its route does not exist: HTTP 404): its tasks end in
    `error` after one attempt."""
    register_agent(service, "gone", stack.echo.url, ["gone.echo"], endpoint="/no-such-route", limits={"gone.echo": {"maxAttempts": 3}})
    return "gone.echo"


def test_lifecycle_create_run_done(stack: Stack, client: httpx.Client) -> None:
    corr = unique("life")
    payload = {"hello": "world", "n": 42, "nested": {"list": [1, 2, 3]}, "unicode": "héllo ✓"}
    created = create(client, "echo", payload, correlationId=corr)
    assert created["status"] == "queued"
    assert created["agent"] == "echo"
    assert uuid.UUID(created["id"]) and created["traceId"]

    body = wait_status(client, created["id"])
    task, events = body["task"], body["events"]
    assert task["result"]["status"] == "completed"
    assert task["result"]["agent"] == {"slug": "echo", "channel": "http"}
    assert task["result"]["output"]["received"] == payload
    assert task["result"]["output"]["service"] == "echo-agent-svc"
    assert task["payload"] == payload and task["type"] == "echo" and task["source"] == "tests"
    assert task["error"] is None and task["lease_owner"] is None
    assert task["attempts"] == 1 and task["version"] == 3
    assert task["started_at"] and task["finished_at"] and task["created_at"] <= task["started_at"] <= task["finished_at"]

    assert [e["kind"] for e in events] == ["created", "running", "done"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    for e in events:
        assert e["task_id"] == created["id"]
        assert e["trace_id"] == created["traceId"], e
        assert e["correlation_id"] == corr, e
    assert events[0]["actor"] == "tests" and events[2]["actor"] == "echo"

    # The agent's two log lines, stored with the task's trace id.
    def agent_logs() -> list[str] | None:
        logs = client.get("/logs", params={"traceId": created["traceId"], "service": "echo-agent-svc"}).json()["logs"]
        messages = sorted(entry["message"] for entry in logs)
        return messages if messages == ["ECHO_REQUEST", "ECHO_RESPONSE"] else None

    wait_for(agent_logs, timeout=10, what="ECHO_REQUEST and ECHO_RESPONSE log lines")
    logs = client.get("/logs", params={"taskId": created["id"]}).json()["logs"]
    assert {entry["trace_id"] for entry in logs} == {created["traceId"]}
    assert {entry["correlation_id"] for entry in logs} == {corr}


def test_trace_id_header_is_kept(client: httpx.Client) -> None:
    trace = uuid.uuid4().hex
    created = client.post("/task", json={"type": "echo", "source": "tests"}, headers={"X-Trace-Id": trace}).json()
    assert created["traceId"] == trace
    body = wait_status(client, created["id"])
    assert {e["trace_id"] for e in body["events"]} == {trace}
    assert body["task"]["result"]["output"]["received"] is None  # no payload: the agent echoes null


def test_idempotency_key_returns_the_first_task(stack: Stack, client: httpx.Client) -> None:
    key = unique("idem")
    first = create(client, "echo", {"n": 1}, idempotencyKey=key)
    again = create(client, "echo", {"n": 2}, idempotencyKey=key)
    assert again["id"] == first["id"] and again["traceId"] == first["traceId"]

    other_key = unique("idem")
    with ThreadPoolExecutor(20) as pool:
        ids = set(pool.map(lambda i: create(client, "echo", {"n": i}, idempotencyKey=other_key)["id"], range(20)))
    assert len(ids) == 1
    rows = query(
        stack.database_url,
        "SELECT t.idempotency_key, count(DISTINCT t.id) AS tasks, count(e.id) FILTER (WHERE e.kind = 'created') AS created "
        "FROM tasks t JOIN task_events e ON e.task_id = t.id WHERE t.idempotency_key = ANY(%s) GROUP BY 1",
        ([key, other_key],),
    )
    assert {r["idempotency_key"]: (r["tasks"], r["created"]) for r in rows} == {key: (1, 1), other_key: (1, 1)}
    assert fetch(client, first["id"])["task"]["payload"] == {"n": 1}


def test_list_filters_and_cursor_paging(client: httpx.Client, alt_type: str) -> None:
    corr = unique("list")
    first = [create(client, "echo", {"i": i}, correlationId=corr) for i in range(4)]
    alt = create(client, alt_type, {"alt": True}, correlationId=corr)
    for t in [*first, alt]:
        wait_status(client, t["id"])
    boundary = max(datetime.fromisoformat(fetch(client, t["id"])["task"]["updated_at"]) for t in [*first, alt]) + timedelta(microseconds=1)
    later = [create(client, "echo", {"i": i}, correlationId=corr) for i in range(4, 7)]
    for t in later:
        wait_status(client, t["id"])
    every = {t["id"] for t in [*first, alt, *later]}

    def ids(**params: str | int) -> list[str]:
        resp = client.get("/tasks", params={"limit": 200, **params})
        assert resp.status_code == 200, resp.text
        return [t["id"] for t in resp.json()["tasks"]]

    assert set(ids(corrId=corr)) == every
    assert ids(correlationId=corr) == ids(corrId=corr)
    assert set(ids(corrId=corr, status="done")) == every
    assert ids(corrId=corr, status="queued") == []
    assert ids(corrId=corr, type=alt_type) == [alt["id"]]
    assert set(ids(corrId=corr, type="echo")) == every - {alt["id"]}
    assert ids(traceId=later[0]["traceId"]) == [later[0]["id"]]
    assert set(ids(corrId=corr, since=boundary.isoformat())) == {t["id"] for t in later}
    epoch_ms = int(boundary.timestamp() * 1000) + 1
    assert set(ids(corrId=corr, since=str(epoch_ms))) == {t["id"] for t in later}
    assert ids(corrId=unique("nobody")) == []

    rows = client.get("/tasks", params={"corrId": corr, "limit": 200}).json()["tasks"]
    keys = [(r["updated_at"], r["id"]) for r in rows]
    assert keys == sorted(keys, reverse=True), "newest updated_at first"

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"corrId": corr, "limit": 3, **({"cursor": cursor} if cursor else {})}
        body = client.get("/tasks", params=params).json()
        assert len(body["tasks"]) <= 3
        seen += [t["id"] for t in body["tasks"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == len(every) and set(seen) == every
    assert seen == [r["id"] for r in rows]


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "1.5", "99999999999999999999"])
def test_list_limit_out_of_range_is_400(client: httpx.Client, limit: str) -> None:
    resp = client.get("/tasks", params={"limit": limit})
    assert resp.status_code == 400
    assert "limit" in resp.json()["error"]


def test_list_limit_bounds_and_bad_filters(client: httpx.Client) -> None:
    assert client.get("/tasks", params={"limit": 1}).status_code == 200
    assert len(client.get("/tasks", params={"limit": 1}).json()["tasks"]) <= 1
    assert client.get("/tasks", params={"limit": 200}).status_code == 200
    assert client.get("/tasks").status_code == 200
    for params in (
        {"status": "finished"},
        {"since": "yesterday"},
        {"since": "99999999999999999999"},
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJub3QtYS10aW1lIiwgIm5vdC1hLXV1aWQiXQ"},  # ["not-a-time", "not-a-uuid"]
        {"cursor": "WzEsMl0"},  # [1, 2]
        {"type": "a\x00b"},
        {"corrId": "\x00"},
    ):
        resp = client.get("/tasks", params=params)
        assert resp.status_code == 400, (params, resp.status_code, resp.text)
        assert resp.json()["error"]


def test_concurrent_patches_with_one_version(stack: Stack, client: httpx.Client) -> None:
    created = create(client, "echo", {"patch": True})
    task = wait_status(client, created["id"])["task"]  # done: nothing else will bump the version
    version = task["version"]
    before = len(fetch(client, created["id"])["events"])  # this task's events: other modules' tasks may run meanwhile

    def patch(i: int) -> httpx.Response:
        with httpx.Client(base_url=stack.url, auth=client.auth, timeout=20) as c:
            return c.patch(f"/task/{created['id']}", json={"ifVersion": version, "result": {"writer": i}})

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(patch, range(50)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1 and codes.count(409) == 49, codes
    assert all(r.json() == {"error": "Version conflict"} for r in responses if r.status_code == 409)
    (winner,) = [r.json()["task"] for r in responses if r.status_code == 200]
    assert winner["version"] == version + 1

    after = fetch(client, created["id"])
    assert after["task"]["version"] == version + 1
    assert after["task"]["result"] == winner["result"]
    assert len(after["events"]) == before + 1
    assert after["events"][-1]["kind"] == "updated" and after["events"][-1]["data"]["fields"] == ["result"]


def test_patch_fields_and_status(client: httpx.Client) -> None:
    created = create(client, "echo", {"x": 1})
    task = wait_status(client, created["id"])["task"]
    resp = client.patch(
        f"/task/{created['id']}", json={"ifVersion": task["version"], "status": "error", "error": {"message": "by hand"}, "correlationId": "fixed"}
    )
    assert resp.status_code == 200, resp.text
    patched = resp.json()["task"]
    assert patched["status"] == "error" and patched["error"] == {"message": "by hand"} and patched["correlation_id"] == "fixed"
    assert patched["version"] == task["version"] + 1
    last = fetch(client, created["id"])["events"][-1]
    assert last["kind"] == "status" and last["data"]["status"] == "error" and last["correlation_id"] == "fixed"
    stale = client.patch(f"/task/{created['id']}", json={"ifVersion": task["version"], "payload": {"y": 2}})
    assert stale.status_code == 409 and stale.json() == {"error": "Version conflict"}


def test_patch_status_by_hand_leaves_nothing_stuck(client: httpx.Client) -> None:
    """`queued` by hand runs the task again; `running` by hand gets a lease, so it is re-queued if
    nobody finishes it; an end status clears the lease and stamps finished_at."""
    created = create(client, "echo", {"again": True})
    task = wait_status(client, created["id"])["task"]
    requeued = client.patch(f"/task/{created['id']}", json={"ifVersion": task["version"], "status": "queued"}).json()["task"]
    assert requeued["finished_at"] is None and requeued["run_after"] >= task["finished_at"]
    body = wait_for(
        lambda: (b := fetch(client, created["id"]))["task"]["status"] == "done" and b["task"]["attempts"] == 2 and b,
        timeout=15,
        what="the re-queued task to run a second time",
    )
    assert [e["kind"] for e in body["events"]] == ["created", "running", "done", "status", "running", "done"]
    assert body["task"]["result"]["output"]["received"] == {"again": True}

    version = body["task"]["version"]
    running = client.patch(f"/task/{created['id']}", json={"ifVersion": version, "status": "running"}).json()["task"]
    assert running["lease_owner"] == "patch:admin" and running["lease_expires_at"] > running["updated_at"]
    assert running["finished_at"] is None
    ended = client.patch(f"/task/{created['id']}", json={"ifVersion": version + 1, "status": "cancelled"}).json()["task"]
    assert ended["lease_owner"] is None and ended["lease_expires_at"] is None and ended["finished_at"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"status": "done"}, "ifVersion"),
        ({"ifVersion": 1}, "nothing to change"),
        ({"ifVersion": 1, "status": "finished"}, "status"),
        ({"ifVersion": "1", "status": "done"}, "ifVersion"),
        ({"ifVersion": 0, "status": "done"}, "ifVersion"),
        ({"ifVersion": True, "status": "done"}, "ifVersion"),
        ({"ifVersion": 1, "correlationId": 5}, "correlationId"),
        ([{"ifVersion": 1, "status": "done"}], "object"),
        ({"ifVersion": 1, "payload": {"bad": "nul \u0000 char"}}, "payload"),
    ],
    ids=["no-ifVersion", "no-field", "unknown-status", "string-version", "zero-version", "bool-version", "int-corr", "array", "nul-in-json"],
)
def test_patch_refusals_write_nothing(stack: Stack, client: httpx.Client, body: object, needle: str) -> None:
    created = create(client, "echo")
    task = wait_status(client, created["id"])["task"]
    if isinstance(body, dict) and type(body.get("ifVersion")) is int and body["ifVersion"] == 1:  # the current version
        body = {**body, "ifVersion": task["version"]}
    before = counts(stack.database_url)
    resp = client.patch(f"/task/{created['id']}", json=body)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"]
    assert counts(stack.database_url) == before
    assert fetch(client, created["id"])["task"]["version"] == task["version"]


@pytest.mark.parametrize(
    "task_id",
    [str(uuid.UUID(int=0)), str(uuid.uuid4()), "not-a-uuid", "123", "%00", "00000000-0000-0000-0000-00000000000g", "x" * 300],
    ids=["zero", "random", "word", "number", "nul", "bad-hex", "long"],
)
def test_unknown_and_malformed_ids_are_404(client: httpx.Client, task_id: str) -> None:
    for method, path, body in (
        ("GET", f"/task/{task_id}", None),
        ("PATCH", f"/task/{task_id}", {"ifVersion": 1, "status": "done"}),
        ("POST", f"/task/{task_id}/cancel", None),
        ("POST", f"/task/{task_id}/retry", None),
        ("POST", "/task/event", {"taskId": task_id, "actor": "tests", "kind": "note"}),
    ):
        resp = client.request(method, path, json=body)
        if path == "/task/event" and len(task_id) > 64:  # a body field longer than any id: a plain 400
            assert resp.status_code == 400 and "taskId" in resp.json()["error"]
            continue
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
        assert resp.json() == {"error": "Task not found"}


def test_cancel_queued_and_retry(stack: Stack, client: httpx.Client, parked_type: str) -> None:
    created = create(client, parked_type, {"park": True})
    # Nobody listens: the attempt is given back and the task waits for its agent.
    task = wait_for(
        lambda: (t := fetch(client, created["id"])["task"])["status"] == "queued" and t["error"] and t,
        timeout=15,
        what="the parked task back in the queue, waiting for its agent",
    )
    assert task["attempts"] == 0 and task["error"]["waitingForAgent"] == "parked" and "unreachable" in task["error"]["message"]

    resp = client.post(f"/task/{created['id']}/cancel")
    assert resp.status_code == 200, resp.text
    cancelled = resp.json()["task"]
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] and cancelled["version"] == task["version"] + 1
    event = fetch(client, created["id"])["events"][-1]
    assert event["kind"] == "cancelled" and event["data"] == {"status": "cancelled", "from": "queued"}

    again = client.post(f"/task/{created['id']}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["error"]

    retried = client.post(f"/task/{created['id']}/retry")
    assert retried.status_code == 200, retried.text
    requeued = retried.json()["task"]
    assert requeued["status"] == "queued" and requeued["attempts"] == 0 and requeued["error"] is None and requeued["finished_at"] is None
    assert client.post(f"/task/{created['id']}/retry").status_code == 409  # queued: nothing to retry
    # Its agent is still unreachable: the dispatcher does not claim it again; cancel it for good.
    assert client.post(f"/task/{created['id']}/cancel").status_code == 200
    kinds = [e["kind"] for e in fetch(client, created["id"])["events"]]
    assert kinds == ["created", "running", "agent_unreachable", "cancelled", "retried", "cancelled"]


def test_retry_failed_task_and_state_conflicts(client: httpx.Client, failing_type: str) -> None:
    created = create(client, failing_type, {"fail": True})
    failed = wait_status(client, created["id"], ("error",))["task"]
    assert failed["error"]["attempts"] == 1 and failed["error"]["message"]
    assert client.post(f"/task/{created['id']}/cancel").status_code == 409  # error: nothing to cancel

    resp = client.post(f"/task/{created['id']}/retry")
    assert resp.status_code == 200 and resp.json()["task"]["status"] == "queued"
    again = wait_status(client, created["id"], ("error",))
    assert again["task"]["attempts"] == 1
    assert [e["kind"] for e in again["events"]] == ["created", "running", "error", "retried", "running", "error"]

    done = create(client, "echo")
    wait_status(client, done["id"])
    for action in ("cancel", "retry"):
        resp = client.post(f"/task/{done['id']}/{action}")
        assert resp.status_code == 409, action
        assert "done" in resp.json()["error"]


def test_task_events_post_and_search(client: httpx.Client) -> None:
    corr = unique("ev")
    created = create(client, "echo", correlationId=corr)
    wait_status(client, created["id"])
    resp = client.post("/task/event", json={"taskId": created["id"], "actor": "script", "kind": "note", "data": {"k": [1, 2]}})
    assert resp.status_code == 202, resp.text
    event = resp.json()["event"]
    assert set(event) == {"id", "taskId", "actor", "kind", "data", "correlationId", "traceId", "ts"}
    assert event["taskId"] == created["id"] and event["actor"] == "script" and event["kind"] == "note" and event["data"] == {"k": [1, 2]}
    assert event["traceId"] == created["traceId"] and event["correlationId"] == corr  # the task's ids by default
    own = client.post(
        "/task/event", json={"taskId": created["id"], "actor": "script", "kind": "note", "correlationId": "other", "traceId": "t-own"}
    ).json()["event"]
    assert own["correlationId"] == "other" and own["traceId"] == "t-own" and own["data"] is None

    def kinds(**params: str | int) -> list[str]:
        r = client.get("/task/events", params=params)
        assert r.status_code == 200, r.text
        return [e["kind"] for e in r.json()["events"]]

    assert kinds(taskId=created["id"]) == ["note", "note", "done", "running", "created"]  # newest first
    assert kinds(taskId=created["id"], actor="script") == ["note", "note"]
    assert kinds(taskId=created["id"], kind="running") == ["running"]
    assert kinds(traceId=created["traceId"]) == ["note", "done", "running", "created"]
    assert kinds(corrId=corr) == kinds(correlationId=corr) == ["note", "done", "running", "created"]
    assert kinds(traceId="t-own") == ["note"]
    assert kinds(taskId=created["id"], limit=2) == ["note", "note"]
    assert kinds(taskId=created["id"], since=event["ts"]) == ["note", "note"]
    assert client.get("/task/events", params={"limit": 0}).status_code == 400
    assert client.get("/task/events", params={"since": "soon"}).status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"actor": "a", "kind": "k"},
        {"taskId": 5, "actor": "a", "kind": "k"},
        {"taskId": "TASK", "kind": "k"},
        {"taskId": "TASK", "actor": "a"},
        {"taskId": "TASK", "actor": ["a"], "kind": "k"},
        {"taskId": "TASK", "actor": "a", "kind": "k", "traceId": 7},
        {"taskId": "TASK", "actor": "a", "kind": "k", "data": "nul \u0000"},
        {"taskId": "TASK", "actor": "a\u0000", "kind": "k"},
        [{"taskId": "TASK", "actor": "a", "kind": "k"}],
    ],
    ids=["no-taskId", "int-taskId", "no-actor", "no-kind", "list-actor", "int-traceId", "nul-data", "nul-actor", "array"],
)
def test_task_event_refusals_write_nothing(stack: Stack, client: httpx.Client, body: object) -> None:
    created = create(client, "echo")
    wait_status(client, created["id"])
    if isinstance(body, dict) and body.get("taskId") == "TASK":
        body = {**body, "taskId": created["id"]}
    elif isinstance(body, list):
        body = [{**body[0], "taskId": created["id"]}]
    before = counts(stack.database_url)
    resp = client.post("/task/event", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]
    assert counts(stack.database_url) == before


def test_unknown_type_is_422_and_writes_nothing(stack: Stack, client: httpx.Client) -> None:
    wait_quiet(stack.database_url)
    before = counts(stack.database_url)
    resp = client.post("/task", json={"type": "no.such.type", "source": "tests", "payload": {"a": 1}})
    assert resp.status_code == 422
    assert resp.json() == {"error": "Unsupported task type: no.such.type"}
    wrong_agent = client.post("/task", json={"type": "echo", "source": "tests", "agentSlug": "nobody"})
    assert wrong_agent.status_code == 422 and "nobody" in wrong_agent.json()["error"]
    assert counts(stack.database_url) == before


BIG = 2 * 1024 * 1024  # above MAX_BODY_BYTES (1 MiB)


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize(
    ("content", "status", "needle"),
    [
        (b'{"source": "tests"}', 400, "type"),
        (b'{"type": "echo"}', 400, "source"),
        (b'{"type": 5, "source": "tests"}', 400, "type"),
        (b'{"type": "echo", "source": null}', 400, "source"),
        (b'{"type": "", "source": "tests"}', 400, "type"),
        (b'{"type": ["echo"], "source": "tests"}', 400, "type"),
        (b'{"type": "echo", "source": {"a": 1}}', 400, "source"),
        (b'{"type": "echo", "source": "tests", "correlationId": 12}', 400, "correlationId"),
        (b'{"type": "echo", "source": "tests", "idempotencyKey": ["k"]}', 400, "idempotencyKey"),
        (b'{"type": "echo", "source": "tests", "agentSlug": false}', 400, "agentSlug"),
        (b'{"type": "echo", "source": "te\\u0000sts"}', 400, "source"),
        (b'{"type": "echo", "source": "tests", "payload": {"s": "\\u0000"}}', 400, "payload"),
        (b'{"type": "echo", "source": "tests", "payload": "\\ud800"}', 400, "JSON"),
        (b'[{"type": "echo", "source": "tests"}]', 400, "object"),
        (b'"echo"', 400, "object"),
        (b"null", 400, "object"),
        (b"type=echo&source=tests", 400, "JSON"),
        (b'{"type": "echo", "source": "tests"', 400, "JSON"),
        (b"", 400, "empty"),
        (b"\xff\xfe\x00", 400, "JSON"),
        (b'{"type": "echo", "source": "tests", "payload": "' + b"x" * BIG + b'"}', 413, "too large"),
    ],
    ids=[
        "no-type",
        "no-source",
        "int-type",
        "null-source",
        "empty-type",
        "list-type",
        "object-source",
        "int-correlationId",
        "list-idempotencyKey",
        "bool-agentSlug",
        "nul-in-source",
        "nul-in-payload",
        "lone-surrogate",
        "array",
        "string",
        "null",
        "form",
        "truncated",
        "empty",
        "binary",
        "huge",
    ],
)
def test_create_refusals_write_nothing(stack: Stack, client: httpx.Client, content: bytes, status: int, needle: str) -> None:
    wait_quiet(stack.database_url)
    before = counts(stack.database_url)
    resp = client.post("/task", content=content, headers={"content-type": "application/json"})
    assert resp.status_code == status, resp.text
    assert needle in resp.json()["error"]
    assert counts(stack.database_url) == before


def test_huge_chunked_body_is_413(stack: Stack, client: httpx.Client) -> None:
    """Without a Content-Length the limit is enforced while the body streams in."""
    wait_quiet(stack.database_url)
    before = counts(stack.database_url)
    body = b'{"type": "echo", "source": "tests", "payload": "' + b"x" * BIG + b'"}'
    resp = client.post("/task", content=_chunks(body), headers={"content-type": "application/json"})
    assert resp.status_code == 413, resp.text
    assert "too large" in resp.json()["error"]
    assert counts(stack.database_url) == before
    # The connection (or a new one) still serves requests afterwards.
    assert client.get("/tasks", params={"limit": 1}).status_code == 200
