"""`/ws` resumes like SSE: every frame carries `id` (`<last log id>-<last event id>`), and a client
that reconnects with `?lastEventId=` gets what it missed, across an app restart: the missed task
events and log lines, each once, and the current row of every task that changed meanwhile."""

from __future__ import annotations

from collections import Counter

from tests.conftest import Stack
from tests.support.live import WSClient
from tests.support.tasks import create, unique, wait_all, wait_status


def test_ws_resume_across_an_app_restart(stack: Stack) -> None:
    corr = unique("ws-resume")
    with stack.client() as client:
        first = WSClient(stack.url).start()
        seen = create(client, "echo", {"before": True}, correlationId=corr)
        frames = first.wait_count("TASK_UPDATE", 1, where=lambda d: d["task"]["id"] == seen["id"] and d["task"]["status"] == "done")
        first.wait_count("TASK_EVENT", 1, where=lambda d: d["taskId"] == seen["id"] and d["kind"] == "done")
        last_id = first.snapshot()[-1]["id"]
        assert frames[-1]["id"] and all("id" in f for f in first.snapshot())
        first.close()

        stack.app.stop()  # the client is away, and so is the app for a while
        stack.app.start()
        missed = [create(client, "echo", {"i": i}, correlationId=corr)["id"] for i in range(20)]
        wait_all(stack.database_url, corr, 21, timeout=30)
        client.post("/log", json={"service": "ws-resume", "message": "while away", "correlationId": corr})

    resumed = WSClient(stack.url, query={"lastEventId": last_id}).start()
    try:
        for task_id in missed:
            resumed.wait_count("TASK_UPDATE", 1, where=lambda d, t=task_id: d["task"]["id"] == t and d["task"]["status"] == "done")
        resumed.wait_count("LOG", 1, where=lambda d: d["message"] == "while away")
        events = resumed.snapshot("TASK_EVENT")
        kinds = Counter((e["data"]["taskId"], e["data"]["kind"]) for e in events if e["data"]["taskId"] in missed)
        for task_id in missed:
            assert kinds[(task_id, "created")] == 1 and kinds[(task_id, "running")] == 1 and kinds[(task_id, "done")] == 1, task_id
        assert not [e for e in events if e["data"]["taskId"] == seen["id"]]  # seen before: not sent again
        ids = [f["id"] for f in resumed.snapshot()]
        logs, evs = zip(*(tuple(int(p) for p in i.split("-")) for i in ids), strict=True)
        assert list(logs) == sorted(logs) and list(evs) == sorted(evs)  # positions only move forward
    finally:
        resumed.close()


def test_ws_refuses_a_malformed_resume_position(stack: Stack) -> None:
    ws = WSClient(stack.url, query={"lastEventId": "yesterday"}).start()
    try:
        error = ws.wait_count("ERROR", 1)[0]
        assert "lastEventId" in error["data"]["error"]
        ws.closed.wait(5)
        assert ws.close_code == 4400
    finally:
        ws.close()


def test_wait_status_helper_sees_done(stack: Stack) -> None:
    """The plain path still works with positions on every frame (no resume asked)."""
    ws = WSClient(stack.url).start()
    try:
        with stack.client() as client:
            task = create(client, "echo")
            wait_status(client, task["id"])
        frame = ws.wait_count("TASK_UPDATE", 1, where=lambda d: d["task"]["id"] == task["id"] and d["task"]["status"] == "done")[-1]
        log_id, event_id = (int(p) for p in frame["id"].split("-"))
        assert event_id > 0 and log_id >= 0
    finally:
        ws.close()
