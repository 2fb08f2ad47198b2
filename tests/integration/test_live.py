"""Live streams across instances: changes made on instance A reach WebSocket and SSE clients of
instance B in order and once; an SSE client that reconnects with Last-Event-ID gets exactly what
it missed; a stuck client is dropped while normal clients keep everything; streams resume after
the database goes away and comes back, and the app's own buffered log lines land; refusals;
heartbeats; subscription filters.

Instance B runs without a dispatcher and with a short SSE heartbeat (`OPSLOOP_SSE_HEARTBEAT_S`),
so every change its clients see was made elsewhere. The database test runs last: it restarts the
embedded server (or, with `OPSLOOP_TEST_DATABASE_URL`, cuts every connection of the test database
with pg_terminate_backend: the machine's own server is never restarted).
"""

from __future__ import annotations

import base64
import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import Stack
from tests.support.live import BASIC, SSEClient, WSClient, read_until_eof, stuck_socket
from tests.support.processes import PASSWORD, USER, Proc, app_instance, wait_for
from tests.support.tasks import create, query, unique, wait_status

HEARTBEAT_S = 0.5


@pytest.fixture(scope="module")
def b(stack: Stack) -> Iterator[Proc]:
    """Instance B: serves streams only (no dispatcher), heartbeat every half second."""
    proc = app_instance(stack.database_url, name="test_live-b", OPSLOOP_DISPATCH="0", OPSLOOP_SSE_HEARTBEAT_S=str(HEARTBEAT_S)).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def a(stack: Stack) -> Iterator[httpx.Client]:
    """A client of instance A (where every change is made)."""
    with stack.client() as c:
        yield c


def health(proc: Proc) -> dict[str, Any]:
    return httpx.get(proc.url + "/health", timeout=5).json()


def subscribers(proc: Proc) -> int:
    return health(proc)["live"]["subscribers"]


def open_sse(proc: Proc, **kw: Any) -> SSEClient:
    client = SSEClient(proc.url, **kw).start()
    assert client.status == 200, client.response_headers
    wait_for(lambda: "connected" in client.comments, what="SSE connected comment")
    return client


def open_ws(proc: Proc, **query: str) -> WSClient:
    client = WSClient(proc.url, query=query).start()
    client.send({"type": "ping"})  # answered once the server loop runs: the subscription exists
    client.wait_count("PONG", 1)
    return client


def post_log(a: httpx.Client, **entry: Any) -> dict[str, Any]:
    resp = a.post("/log", json={"service": "live-test", **entry})
    assert resp.status_code == 202, resp.text
    return resp.json()["log"]


def post_logs(a: httpx.Client, entries: list[dict[str, Any]]) -> list[int]:
    resp = a.post("/log", json=entries)
    assert resp.status_code == 202, resp.text
    return resp.json()["logs"]


def post_event(a: httpx.Client, task_id: str, trace_id: str, kind: str) -> dict[str, Any]:
    resp = a.post("/task/event", json={"taskId": task_id, "actor": "live-test", "kind": kind, "traceId": trace_id})
    assert resp.status_code == 202, resp.text
    return resp.json()["event"]


def test_changes_on_a_reach_b_in_order_and_once(stack: Stack, a: httpx.Client, b: Proc) -> None:
    ws = open_ws(b)
    sse = open_sse(b)
    try:
        created = create(a, "echo", {"live": True}, correlationId=unique("live"))
        task_id, trace = created["id"], created["traceId"]
        wait_status(a, task_id)
        # the agent's own lines (its writer flushes them shortly after answering) come first, so
        # what follows is written strictly one after the other
        wait_for(lambda: len(query(stack.database_url, "SELECT id FROM logs WHERE trace_id = %s", (trace,))) >= 2, what="echo agent log lines")
        mine = [post_log(a, message=f"single {i}", traceId=trace, taskId=task_id)["id"] for i in range(5)]
        mine += post_logs(a, [{"service": "live-test", "message": f"batch {i}", "traceId": trace} for i in range(5)])
        note = post_event(a, task_id, trace, "note")["id"]
        final = a.get(f"/task/{task_id}").json()["task"]

        event_ids = [r["id"] for r in query(stack.database_url, "SELECT id FROM task_events WHERE task_id = %s ORDER BY id", (task_id,))]
        log_ids = [r["id"] for r in query(stack.database_url, "SELECT id FROM logs WHERE trace_id = %s ORDER BY id", (trace,))]
        assert len(event_ids) >= 4 and len(log_ids) >= 12

        # WebSocket: every event and log line once, in commit order; task versions only ever grow
        ws.wait_count("TASK_EVENT", len(event_ids), where=lambda d: d["taskId"] == task_id)
        ws.wait_count("LOG", len(log_ids), where=lambda d: d["trace_id"] == trace)
        ws.wait_count("TASK_UPDATE", 1, where=lambda d: d["task"]["id"] == task_id and d["task"]["version"] == final["version"])
        # A line committed after all of the above: a duplicate of anything earlier would arrive before it.
        marker = post_log(a, message="marker", traceId=unique("marker"))["id"]
        ws.wait_count("LOG", 1, where=lambda d: d["id"] == marker)
        assert [f["data"]["id"] for f in ws.snapshot("TASK_EVENT") if f["data"]["taskId"] == task_id] == event_ids
        assert [f["data"]["id"] for f in ws.snapshot("LOG") if f["data"]["trace_id"] == trace] == log_ids
        versions = [f["data"]["task"]["version"] for f in ws.snapshot("TASK_UPDATE") if f["data"]["task"]["id"] == task_id]
        assert versions == sorted(set(versions)) and versions[-1] == final["version"], versions
        assert [f for f in ws.snapshot("TASK_UPDATE") if f["data"]["task"]["id"] == task_id][-1]["data"]["task"]["status"] == "done"
        for f in ws.snapshot():  # data frames carry `id`, the position to resume from; control frames do not
            assert set(f) == ({"ts", "type", "data", "id"} if f["type"] in ("TASK_UPDATE", "TASK_EVENT", "LOG") else {"ts", "type", "data"}), f

        # SSE: the same events and lines, once, in order, each frame with a growing position id
        sse.wait_count("event", len(event_ids), where=lambda d: d["taskId"] == task_id)
        sse.wait_count("log", len(log_ids), where=lambda d: d["trace_id"] == trace)
        assert [f.data["id"] for f in sse.snapshot("event") if f.data["taskId"] == task_id] == event_ids
        assert [f.data["id"] for f in sse.snapshot("log") if f.data["trace_id"] == trace] == log_ids
        positions = [tuple(int(x) for x in f.id.split("-")) for f in sse.snapshot() if f.event in ("log", "event")]
        assert all(p is not None for p in positions) and positions == sorted(positions)
        assert log_ids[-len(mine) :] == mine and event_ids[-1] == note
    finally:
        ws.close()
        sse.close()


def test_sse_reconnect_with_last_event_id_gets_exactly_what_it_missed(a: httpx.Client, b: Proc) -> None:
    trace = unique("replay")
    task_id = create(a, "echo", {"replay": True})["id"]
    first = open_sse(b, params={"traceId": trace})
    seen = [post_log(a, message=f"seen {i}", traceId=trace)["id"] for i in range(3)]
    seen_event = post_event(a, task_id, trace, "seen")["id"]
    frames = first.wait_count("log", 3) + first.wait_count("event", 1)
    last_id = max((f for f in first.snapshot() if f.event in ("log", "event")), key=lambda f: f.at).id
    assert last_id == f"{max(seen)}-{seen_event}"
    first.close()
    assert len(frames) == 4

    missed: list[tuple[str, int]] = [("log", post_log(a, message=f"missed {i}", traceId=trace)["id"]) for i in range(3)]
    missed.append(("event", post_event(a, task_id, trace, "missed")["id"]))
    missed.append(("log", post_log(a, message="missed last", traceId=trace)["id"]))

    second = open_sse(b, params={"traceId": trace}, last_event_id=last_id)
    try:
        second.wait_count("log", 4)
        live = post_log(a, message="live again", traceId=trace)["id"]
        live_frame = second.wait_count("log", 5)[-1]
        second.wait_heartbeat_after(live_frame)  # the server's queue stayed empty after it: no duplicate is on the way
        got = [(f.event, f.data["id"]) for f in second.snapshot() if f.event in ("log", "event")]
        assert got == [*missed, ("log", live)], "exactly what was missed, in order, then live"
    finally:
        second.close()

    # the query-string form (EventSource polyfills), from the same position
    third = open_sse(b, params={"traceId": trace, "lastEventId": last_id})
    try:
        third.wait_count("log", 5)
        assert [(f.event, f.data["id"]) for f in third.snapshot() if f.event in ("log", "event")] == [*missed, ("log", live)]
    finally:
        third.close()


def test_stuck_clients_are_dropped_while_normal_clients_get_everything(a: httpx.Client, b: Proc) -> None:
    service = unique("flood")
    base = subscribers(b)
    normal_ws = open_ws(b, service=service)
    normal_sse = open_sse(b, params={"service": service})
    stuck = [stuck_socket(b.url, "ws", {"service": service}), stuck_socket(b.url, "sse", {"service": service})]
    try:
        wait_for(lambda: subscribers(b) == base + 4, what="four subscribers on B")
        filler = "x" * 1000
        sent: list[int] = []
        for n in range(12):  # 6,000 lines of 1 kB: far more than a queue and the socket buffers hold
            sent += post_logs(a, [{"service": service, "message": f"flood {n}-{i} {filler}"} for i in range(500)])
        wait_for(lambda: subscribers(b) == base + 2, timeout=30, what="the two stuck clients dropped")
        got_ws = normal_ws.wait_count("LOG", len(sent), timeout=60)
        got_sse = normal_sse.wait_count("log", len(sent), timeout=60)
        assert [f["data"]["id"] for f in got_ws] == sent, "the normal WebSocket client got every line, in order, once"
        assert [f.data["id"] for f in got_sse] == sent, "the normal SSE client got every line, in order, once"
        assert not normal_ws.closed.is_set() and not normal_sse.ended.is_set()
        # the server ended both: the WebSocket with a close frame saying why, the SSE response by
        # closing the connection (after what it had already buffered)
        assert b"too slow" in read_until_eof(stuck[0], or_marker=b"too slow: queue overflowed")
        read_until_eof(stuck[1])
    finally:
        for sock in stuck:
            sock.close()
        normal_ws.close()
        normal_sse.close()
    wait_for(lambda: subscribers(b) == base, what="subscriptions released")


def test_unauthenticated_and_wrong_origin_streams_are_refused(b: Proc) -> None:
    def sse(headers: dict[str, str], params: dict[str, str] | None = None) -> httpx.Response:
        with httpx.stream("GET", b.url + "/logs/stream", headers=headers, params=params, timeout=5) as resp:
            resp.read() if resp.status_code != 200 else None
            return resp

    assert sse({}).status_code == 401
    assert sse({}).headers["www-authenticate"].startswith("Basic")
    assert sse({"Authorization": "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode()}).status_code == 401
    assert sse({}, {"auth": base64.b64encode(f"{USER}:nope".encode()).decode()}).status_code == 401
    refused = sse({"Authorization": BASIC, "Origin": "http://evil.example"})
    assert refused.status_code == 403 and "Origin" in refused.json()["error"]
    assert sse({"Authorization": BASIC, "Origin": "http://127.0.0.1:3000"}).status_code == 200
    assert sse({}, {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}).status_code == 200
    bad = sse({"Authorization": BASIC}, {"level": "fatal"})
    assert bad.status_code == 400 and "level" in bad.json()["error"]
    bad = sse({"Authorization": BASIC}, {"taskId": "nope"})
    assert bad.status_code == 400 and "taskId" in bad.json()["error"]

    ws_url = b.url.replace("http://", "ws://") + "/ws"
    for headers, origin, status in (
        ({}, None, 401),
        ({"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()}, None, 401),
        ({"Authorization": BASIC}, "http://evil.example", 403),
    ):
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url, additional_headers=headers, origin=origin, open_timeout=5)  # type: ignore[arg-type]
        assert info.value.response.status_code == status
    with connect(ws_url, additional_headers={"Authorization": BASIC}, origin="http://localhost:3000", open_timeout=5) as ws:  # type: ignore[arg-type]
        ws.send('{"type": "ping"}')
        assert "PONG" in ws.recv(timeout=5)
    with connect(ws_url + "?level=fatal", additional_headers={"Authorization": BASIC}, open_timeout=5) as ws:
        assert "level must be one of" in ws.recv(timeout=5)
        with pytest.raises(Exception):  # noqa: B017 - closed by the server (4400)
            ws.recv(timeout=5)
        assert ws.close_code == 4400


def test_sse_heartbeats_carry_the_position(a: httpx.Client, b: Proc) -> None:
    quiet = open_sse(b, params={"traceId": unique("quiet")})
    try:
        beats = quiet.wait_count("heartbeat", 3, timeout=10)
        assert all(f.id and len(f.id.split("-")) == 2 for f in beats)
        gaps = [y.at - x.at for x, y in itertools.pairwise(beats)]
        assert all(g < HEARTBEAT_S * 4 for g in gaps), gaps
    finally:
        quiet.close()


def test_websocket_subscribe_filters_and_errors(a: httpx.Client, b: Proc) -> None:
    service = unique("sub")
    ws = open_ws(b)
    try:
        ws.send({"type": "subscribe", "filter": {"types": ["LOG"], "service": service}})
        ack = ws.wait_count("SUBSCRIBED", 1)[0]
        assert ack["data"] == {"service": service, "kinds": ["log"]}
        post_log(a, message="not for this client")
        create(a, "echo", {"sub": True})
        wanted = post_log(a, service=service, message="for this client")["id"]
        ws.wait_count("LOG", 1, where=lambda d: d["id"] == wanted)
        # committed after everything above: whatever else this client would get arrives before it
        marker = post_log(a, service=service, message="marker")["id"]
        marker_frame = ws.wait_count("LOG", 1, where=lambda d: d["id"] == marker)[0]
        frames = ws.snapshot()
        after_ack = frames[frames.index(ack) + 1 : frames.index(marker_frame)]
        assert [(f["type"], f["data"]["id"]) for f in after_ack] == [("LOG", wanted)], "only this service's log lines"
        ws.send({"type": "subscribe", "filter": {"types": ["NOPE"]}})
        err = ws.wait_count("ERROR", 1)[0]
        assert "types" in err["data"]["error"]
        ws.send({"type": "what"})
        ws.wait_count("ERROR", 2)
        assert ws.ws is not None
        ws.ws.send("not json")
        ws.wait_count("ERROR", 3)
        ws.send({"type": "ping"})
        ws.wait_count("PONG", 2)
    finally:
        ws.close()


# -- last: the database goes away and comes back -------------------------------------------


def cut_database(database_url: str) -> str:
    """Restart the embedded server, or cut every connection to the test database of an external
    one. Returns which it did."""
    if not os.environ.get("OPSLOOP_TEST_DATABASE_URL"):
        from opsloop.backend.embedded_db import restart_embedded
        from tests.support.database import EMBEDDED_DIR

        restart_embedded(EMBEDDED_DIR)
        return "restart"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
    return "connection cut"


LOST = "live bus lost its database connection; reconnecting"


def test_database_restart_streams_resume_and_buffered_lines_land(stack: Stack, a: httpx.Client, b: Proc) -> None:
    service = unique("restart")
    ws = open_ws(b)
    sse = open_sse(b)
    try:
        before = post_log(a, service=service, message="before")["id"]
        ws.wait_count("LOG", 1, where=lambda d: d["id"] == before)
        sse.wait_count("log", 1, where=lambda d: d["id"] == before)
        (t0,) = query(stack.database_url, "SELECT now() AS t")
        what = cut_database(stack.database_url)

        # both instances notice, log it through their writers (buffered while the database is
        # away), reconnect; the streams' connections stay open all along
        wait_for(
            lambda: health(b).get("live", {}).get("connected") and health(stack.app).get("live", {}).get("connected"),
            timeout=30,
            what="both buses reconnected",
        )
        lost = wait_for(
            lambda: (
                (rows := query(stack.database_url, "SELECT id, ts FROM logs WHERE message = %s AND ts >= %s", (LOST, t0["t"])))
                and len(rows) >= 2
                and rows
            ),
            timeout=30,
            what=f"both instances' '{LOST}' lines stored ({what})",
        )
        after = wait_for(lambda: _try_post(a, service), timeout=30, what="POST /log accepted again")
        ws.wait_count("LOG", 1, timeout=20, where=lambda d: d["id"] == after)
        sse.wait_count("log", 1, timeout=20, where=lambda d: d["id"] == after)
        lost_ids = sorted(r["id"] for r in lost)
        ws.wait_count("LOG", len(lost_ids), timeout=20, where=lambda d: d["message"] == LOST)
        assert sorted(f["data"]["id"] for f in ws.snapshot("LOG") if f["data"]["message"] == LOST) == lost_ids, "each reported once"
        assert sorted(f.data["id"] for f in sse.snapshot("log") if f.data["message"] == LOST) == lost_ids
        assert not ws.closed.is_set() and not sse.ended.is_set(), "the streams survived"
        ids = [f["data"]["id"] for f in ws.snapshot("LOG")]
        assert len(ids) == len(set(ids)), "no line twice after the catch-up"
    finally:
        ws.close()
        sse.close()


def _try_post(a: httpx.Client, service: str) -> int | None:
    try:
        resp = a.post("/log", json={"service": service, "message": "after " + uuid.uuid4().hex[:6]})
    except httpx.HTTPError:
        return None
    return resp.json()["log"]["id"] if resp.status_code == 202 else None
