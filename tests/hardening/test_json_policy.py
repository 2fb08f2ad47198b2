"""The JSON policy at every door (`jsonutil`): deep, wide, NUL-holding and 64-bit-overflowing JSON
in task payloads, results, event data, log data, agent answers and stream frames. Each bad item
gets a clear 4xx (or fails its own task with a message); nothing else is touched: the concurrent
workloads here are counted to the last task.

The finding behind it: a payload nested ~253 deep parsed (orjson allows 1,024 levels) but could
not be encoded again (254), and every batch it travelled in failed with it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from opsloop.backend.jsonutil import ANSWER_DEPTH, MAX_DEPTH
from tests.conftest import Stack
from tests.support.live import WSClient
from tests.support.processes import PASSWORD, USER
from tests.support.tasks import create, fetch, query, register_agent, unique, wait_all, wait_status


def nested(depth: int, leaf: Any = 1) -> Any:
    """A value `depth` containers deep (alternating arrays and objects)."""
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def raw_nested(depth: int) -> str:
    return "[" * depth + "]" * depth


DEPTHS_REFUSED = [MAX_DEPTH + 1, 253, 254, 300, 500, 1020, 1025, 5000]


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as c:
        yield c


@pytest.fixture(scope="module")
def service(stack: Stack) -> Iterator[httpx.Client]:
    with stack.service_client() as c:
        yield c


def post_raw(client: httpx.Client, path: str, text: str, method: str = "POST") -> httpx.Response:
    return client.request(method, path, content=text.encode(), headers={"content-type": "application/json"})


def assert_refused(resp: httpx.Response, *words: str) -> None:
    assert resp.status_code == 400, (resp.status_code, resp.text[:300])
    message = resp.json()["error"]
    for word in words:
        assert word in message, (word, message)


# -- at the doors -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", DEPTHS_REFUSED)
def test_deep_task_payload_is_refused_and_nothing_written(stack: Stack, client: httpx.Client, depth: int) -> None:
    corr = unique("deep")
    body = '{"type": "echo", "source": "tests", "correlationId": "' + corr + '", "payload": ' + raw_nested(depth) + "}"
    assert_refused(post_raw(client, "/task", body), "nested deeper than 64")
    assert query(stack.database_url, "SELECT count(*) AS n FROM tasks WHERE correlation_id = %s", (corr,))[0]["n"] == 0


def test_payload_at_the_limit_runs_and_echoes_exactly(client: httpx.Client) -> None:
    payload = nested(MAX_DEPTH - 1)  # the body's object is one level more: exactly at the limit
    created = create(client, "echo", payload)
    task = wait_status(client, created["id"])["task"]
    assert task["payload"] == payload and task["result"]["output"]["received"] == payload


def test_deep_values_on_every_other_door(stack: Stack, client: httpx.Client, service: httpx.Client) -> None:
    task = wait_status(client, create(client, "echo", {"n": 1})["id"])["task"]
    deep = raw_nested(MAX_DEPTH + 10)
    doors = [
        ("PATCH", f"/task/{task['id']}", '{"ifVersion": ' + str(task["version"]) + ', "result": ' + deep + "}", "result"),
        ("PATCH", f"/task/{task['id']}", '{"ifVersion": ' + str(task["version"]) + ', "error": ' + deep + "}", "error"),
        ("POST", "/task/event", '{"taskId": "' + task["id"] + '", "actor": "t", "kind": "note", "data": ' + deep + "}", "data"),
        ("POST", "/log", '{"service": "deep", "message": "m", "data": ' + deep + "}", "data"),
        ("POST", "/log", '[{"service": "deep", "message": "ok"}, {"service": "deep", "message": "m", "data": ' + deep + "}]", "entry 1: data"),
    ]
    for method, path, body, where in doors:
        assert_refused(post_raw(client, path, body, method), where, "nested deeper than 64")
    assert fetch(client, task["id"])["task"]["version"] == task["version"]  # no patch applied
    assert query(stack.database_url, "SELECT count(*) AS n FROM logs WHERE service = 'deep'")[0]["n"] == 0
    # agent registration is a door too (internal key)
    resp = post_raw(service, "/agents/register", '{"slug": "d", "url": "http://127.0.0.1:1", "taskTypes": ["d"], "limits": ' + deep + "}")
    assert_refused(resp, "nested deeper than 64")


def test_wide_payload_is_fine(client: httpx.Client) -> None:
    payload = {"items": list(range(50_000)), "keys": {f"k{i}": i for i in range(5_000)}}
    created = create(client, "echo", payload)
    assert wait_status(client, created["id"])["task"]["result"]["output"]["received"] == payload


def test_integers_are_exact_within_64_bits_and_refused_beyond(client: httpx.Client) -> None:
    edges = {"min": -(2**63), "max_signed": 2**63 - 1, "max_unsigned": 2**64 - 1, "long_string": "1" * 40}
    created = create(client, "echo", edges)
    assert wait_status(client, created["id"])["task"]["payload"] == edges
    for number in (2**64, -(2**63) - 1, 10**30):
        resp = post_raw(client, "/task", '{"type": "echo", "source": "tests", "payload": {"n": ' + str(number) + "}}")
        assert_refused(resp, "integer beyond 64 bits")
    assert_refused(post_raw(client, "/log", '{"service": "big", "message": "m", "data": [' + str(2**70) + "]}"), "integer beyond 64 bits")


def test_nul_is_refused_naming_the_path(client: httpx.Client, service: httpx.Client) -> None:
    assert_refused(post_raw(client, "/task", '{"type": "echo", "source": "tests", "payload": {"a": [1, "x\\u0000"]}}'), "payload.a[1]", "NUL")
    for path, body in (
        ("/agents/register", '{"slug": "nul", "url": "http://127.0.0.1:1", "taskTypes": ["a\\u0000"]}'),
        ("/agents/heartbeat", '{"slug": "e\\u0000cho"}'),
    ):
        assert_refused(post_raw(service, path, body), "NUL")


def test_other_inputs_that_answered_500(stack: Stack, client: httpx.Client) -> None:
    """The rest of the 500s the adversarial test found, each now a 400 naming what is wrong."""
    for name in ("service", "q", "traceId", "correlationId", "corrId", "level", "cursor"):
        resp = client.get("/logs", params={name: "a\x00b"})
        assert resp.status_code == 400 and "NUL" in resp.json()["error"], (name, resp.status_code, resp.text)
    for level in ({"a": 1}, [1], 3):
        resp = client.post("/log", json={"service": "s", "message": "m", "level": level})
        assert resp.status_code == 400 and "level" in resp.json()["error"], (level, resp.text)
        resp = client.post("/log", json=[{"service": "s", "message": "m", "level": level}])
        assert resp.status_code == 400 and "level" in resp.json()["error"], (level, resp.text)
    task = create(client, "echo")
    for version in (2**64 - 1, 2**31, -(2**63)):
        resp = client.patch(f"/task/{task['id']}", json={"ifVersion": version, "status": "done"})
        assert resp.status_code == 400 and "ifVersion" in resp.json()["error"], (version, resp.text)


def test_lifecycle_event_kinds_are_reserved(client: httpx.Client) -> None:
    task = wait_status(client, create(client, "echo")["id"])
    before = [e["kind"] for e in task["events"]]
    for kind in ("done", "error", "running", "cancelled", "created", "lease_expired"):
        resp = client.post("/task/event", json={"taskId": task["task"]["id"], "actor": "mallory", "kind": kind})
        assert resp.status_code == 422 and "reserved" in resp.json()["error"], (kind, resp.text)
    assert client.post("/task/event", json={"taskId": task["task"]["id"], "actor": "agent", "kind": "progress"}).status_code == 202
    assert [e["kind"] for e in fetch(client, task["task"]["id"])["events"]] == [*before, "progress"]


# -- concurrency: one bad item never fails the others -------------------------------------------


def test_bad_creates_never_fail_concurrent_good_ones(stack: Stack) -> None:
    corr = unique("mixed")
    deep = raw_nested(253)

    async def run() -> tuple[list[int], list[int]]:
        async with httpx.AsyncClient(base_url=stack.url, auth=(USER, PASSWORD), timeout=30) as http:

            async def good(i: int) -> int:
                body = {"type": "echo", "source": "tests", "correlationId": corr, "payload": {"i": i}}
                return (await http.post("/task", json=body)).status_code

            async def bad(i: int) -> int:
                body = '{"type": "echo", "source": "tests", "correlationId": "' + corr + '", "payload": ' + deep + "}"
                return (await http.post("/task", content=body, headers={"content-type": "application/json"})).status_code

            results = await asyncio.gather(*(good(i) if i % 4 else bad(i) for i in range(200)))
            return [r for i, r in enumerate(results) if i % 4], [r for i, r in enumerate(results) if not i % 4]

    goods, bads = asyncio.run(run())
    assert goods == [202] * 150 and bads == [400] * 50
    wait_all(stack.database_url, corr, 150, timeout=60)  # all 150 good ones written and run, nothing else


# -- agent answers ------------------------------------------------------------------------------


class OddAgent(BaseHTTPRequestHandler):
    """An agent whose answer is chosen by the task's payload (`answer`): what no real agent should
    send, but one might."""

    ANSWERS = {
        "deep": raw_nested(300),
        "deep_but_allowed": json.dumps(nested(ANSWER_DEPTH)),
        "too_deep_for_answers": json.dumps(nested(ANSWER_DEPTH + 1)),
        "nul": '{"text": "a\\u0000b"}',
        "bigint": '{"n": ' + str(2**70) + "}",
        "ok": '{"ok": true}',
    }

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        answer = self.ANSWERS[body["payload"]["answer"]].encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def odd_agent(service: httpx.Client) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OddAgent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    register_agent(service, "odd", f"http://127.0.0.1:{server.server_address[1]}", ["odd"], endpoint="/run", limits={"odd": {"maxAttempts": 3}})
    try:
        yield "odd"
    finally:
        server.shutdown()


def test_unstorable_answers_fail_their_task_alone(stack: Stack, client: httpx.Client, odd_agent: str) -> None:
    corr = unique("answers")
    echo_ids = [create(client, "echo", {"i": i}, correlationId=corr)["id"] for i in range(60)]
    odd = {kind: create(client, odd_agent, {"answer": kind})["id"] for kind in OddAgent.ANSWERS}
    echo_ids += [create(client, "echo", {"i": i}, correlationId=corr)["id"] for i in range(60, 120)]
    wait_all(stack.database_url, corr, 120, timeout=60)  # the workload around them is untouched

    expected = {
        "deep": "nested deeper than 128",
        "too_deep_for_answers": "nested deeper than 128",
        "nul": "NUL",
        "bigint": "integer beyond 64 bits",
    }
    for kind, task_id in odd.items():
        body = wait_status(client, task_id, ("done", "error"))
        task = body["task"]
        if kind in expected:
            assert task["status"] == "error" and task["attempts"] == 1, (kind, task)
            assert "agent odd" in task["error"]["message"] and expected[kind] in task["error"]["message"], (kind, task["error"])
        else:
            assert task["status"] == "done", (kind, task)
    assert wait_status(client, odd["deep_but_allowed"])["task"]["result"]["output"] == nested(ANSWER_DEPTH)

    # and the next tasks after them still complete: nothing is held behind an answer
    later = create(client, "echo", {"after": True})
    assert wait_status(client, later["id"])["task"]["status"] == "done"


# -- rows that break the policy (stored before it) ------------------------------------------------


def test_a_legacy_deep_row_is_served_not_a_500_and_streams_keep_going(stack: Stack, client: httpx.Client) -> None:
    ws = WSClient(stack.url).start()
    try:
        (row,) = query(
            stack.database_url,
            """INSERT INTO tasks (type, source, payload, trace_id, status, agent_slug)
               VALUES ('legacy', 'tests', (repeat('[', 300) || repeat(']', 300))::jsonb, %s, 'error', 'echo') RETURNING id""",
            (uuid.uuid4().hex,),
        )
        task_id = str(row["id"])
        resp = client.get(f"/task/{task_id}")
        assert resp.status_code == 200, resp.text[:300]
        assert "nested deeper than 200 levels: not shown" in resp.text
        listing = client.get("/tasks", params={"type": "legacy"})
        assert listing.status_code == 200 and listing.json()["tasks"][0]["id"] == task_id
        ws.wait_count("TASK_UPDATE", 1, where=lambda d: d["task"]["id"] == task_id)
        marker = create(client, "echo", {"after": "legacy"})
        ws.wait_count("TASK_UPDATE", 1, where=lambda d: d["task"]["id"] == marker["id"] and d["task"]["status"] == "done")
        assert not ws.closed.is_set()
    finally:
        ws.close()


def test_websocket_frames_are_held_to_the_policy(stack: Stack, client: httpx.Client) -> None:
    ws = WSClient(stack.url).start()
    try:
        assert ws.ws is not None
        ws.ws.send(raw_nested(2000))
        ws.send({"type": "ping"})
        errors = ws.wait_count("ERROR", 1)
        assert "nested deeper than 64" in errors[0]["data"]["error"]
        ws.wait_count("PONG", 1)  # still served after the bad frame
    finally:
        ws.close()


def test_unauthenticated_websocket_gets_401(stack: Stack) -> None:
    resp = httpx.get(
        stack.url + "/ws",
        headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
    )
    assert resp.status_code == 401 and resp.json() == {"error": "Unauthorized"}
    assert resp.headers["www-authenticate"].startswith("Basic")
