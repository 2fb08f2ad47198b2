"""`opsloop smoke`: one echo task through the whole loop, checked at every hop.

Steps: the app is healthy; the live stream (`GET /logs/stream`, opened first so nothing is
missed) is up; an echo task is created, ends `done` with the payload echoed back; the agent's log
lines are found by trace id; and the stream delivered the task's events and log lines. Exit 0, or
1 with one line naming the step that failed, so it can gate a deploy.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx

from opsloop.cli.client import Client, ClientError

T = TypeVar("T")


class StepFailed(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


class StreamWatcher:
    """Reads `GET /logs/stream` in a thread and keeps the frames for one trace id."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.trace_id: str | None = None
        self.frames: list[tuple[str, dict[str, Any]]] = []
        self.connected = threading.Event()
        self.error: str | None = None
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=client.url, auth=client.auth, timeout=httpx.Timeout(10.0, read=None))
        self._thread = threading.Thread(target=self._read, name="smoke-sse", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._http.close()

    def _read(self) -> None:
        try:
            with self._http.stream("GET", "/logs/stream", headers={"accept": "text/event-stream"}) as resp:
                if resp.status_code != 200:
                    resp.read()
                    self.error = f"HTTP {resp.status_code} {resp.text[:200]}"
                    self.connected.set()
                    return
                event, data = "message", []
                for line in resp.iter_lines():
                    if line.startswith(":"):
                        self.connected.set()  # the server's "connected" comment
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif line == "":
                        if data:
                            self._keep(event, "\n".join(data))
                        event, data = "message", []
        except httpx.HTTPError as exc:
            if self.error is None and not self._http.is_closed:
                self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.connected.set()

    def _keep(self, event: str, raw: str) -> None:
        try:
            row = json.loads(raw)
        except ValueError:
            return
        with self._lock:
            self.frames.append((event, row))

    def seen(self, trace_id: str) -> tuple[list[str], list[str]]:
        """(event kinds, log messages) the stream delivered for `trace_id`."""
        with self._lock:
            frames = list(self.frames)
        kinds = [r.get("kind", "") for e, r in frames if e == "event" and r.get("traceId") == trace_id]
        messages = [r.get("message", "") for e, r in frames if e == "log" and r.get("trace_id") == trace_id]
        return kinds, messages


def poll(what: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T | None:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        with Client.from_args(args) as client:
            return _run(client, args.timeout, started)
    except StepFailed as exc:
        print(f"smoke: FAILED at step '{exc.step}': {exc.reason}")
        return 1
    except ClientError as exc:  # only Client.from_args raises outside a step: no credentials
        print(f"smoke: FAILED at step 'credentials': {exc}")
        return 1


def _run(client: Client, timeout: float, started: float) -> int:
    def ok(step: str, detail: str) -> None:
        print(f"  ✓ {step:<18} {detail}")

    def guard(step: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ClientError as exc:
            raise StepFailed(step, str(exc)) from None

    print(f"smoke test of {client.url}")
    health = guard("health", client.health)
    if health.get("status") != "ok":
        raise StepFailed("health", f"status {health.get('status')!r}: {health.get('error')}")
    ok("health", f"{health.get('service')} ok")
    agents = guard("agents", client.live_agents).get("echo")
    if not agents:
        raise StepFailed("agents", "no live agent handles echo tasks (start one: `python -m agents.echo`; see GET /agents)")
    ok("agents", f"echo handled by {', '.join(agents)}")

    watcher = StreamWatcher(client)
    watcher.start()
    try:
        if not watcher.connected.wait(10) or watcher.error:
            raise StepFailed("live stream", f"GET /logs/stream did not open: {watcher.error or 'no answer in 10s'}")
        ok("live stream", "GET /logs/stream open")

        marker = f"smoke-{uuid.uuid4().hex[:12]}"
        payload = {"smoke": marker, "nested": {"n": 1, "list": [1, 2, 3]}}
        created = guard(
            "create task", lambda: client.post("/task", {"type": "echo", "source": "opsloop-smoke", "payload": payload, "correlationId": marker})
        )
        task_id, trace_id = created["id"], created["traceId"]
        ok("create task", f"{task_id} (trace {trace_id}, agent {created.get('agent')})")

        def finished() -> dict[str, Any] | None:
            task = client.get(f"/task/{task_id}")["task"]
            return task if task["status"] in ("done", "error", "cancelled") else None

        task = guard("task done", lambda: poll(finished, timeout))
        if task is None:
            status = guard("task done", lambda: client.get(f"/task/{task_id}")["task"]["status"])
            raise StepFailed("task done", f"task {task_id} still {status} after {timeout:g}s (is an echo agent running and registered? GET /agents)")
        if task["status"] != "done":
            error = task.get("error") or {}
            raise StepFailed(
                "task done", f"task {task_id} ended {task['status']}: {error.get('message', error) if isinstance(error, dict) else error}"
            )
        received = ((task.get("result") or {}).get("output") or {}).get("received")
        if received != payload:
            raise StepFailed("task done", f"result.output.received is {received!r}, expected the payload sent")
        ok("task done", f"payload echoed back ({_ms(task['created_at'], task['finished_at'])})")

        def agent_logs() -> list[str] | None:
            messages = [row["message"] for row in client.get("/logs", traceId=trace_id, limit=100)["logs"]]
            return messages if {"ECHO_REQUEST", "ECHO_RESPONSE"} <= set(messages) else None

        messages = guard("logs by trace id", lambda: poll(agent_logs, timeout, interval=0.2))
        if messages is None:
            found = guard("logs by trace id", lambda: [r["message"] for r in client.get("/logs", traceId=trace_id)["logs"]])
            raise StepFailed("logs by trace id", f"GET /logs?traceId={trace_id} has {found or 'nothing'}, expected ECHO_REQUEST and ECHO_RESPONSE")
        ok("logs by trace id", f"{len(messages)} line(s): {', '.join(sorted(set(messages)))}")

        def streamed() -> tuple[list[str], list[str]] | None:
            kinds, lines = watcher.seen(trace_id)
            return (kinds, lines) if {"created", "done"} <= set(kinds) and {"ECHO_REQUEST", "ECHO_RESPONSE"} <= set(lines) else None

        seen = poll(streamed, 10)
        if seen is None:
            kinds, lines = watcher.seen(trace_id)
            reason = watcher.error or "stream open but incomplete"
            raise StepFailed("live stream saw it", f"{reason}: events {kinds or 'none'}, log lines {lines or 'none'} for trace {trace_id}")
        ok("live stream saw it", f"events {' → '.join(seen[0])}; {len(seen[1])} log line(s)")
    finally:
        watcher.close()
    print(f"smoke: OK in {time.monotonic() - started:.1f}s")
    return 0


def _ms(start: str, end: str | None) -> str:
    if not end:
        return "?"
    return f"{(datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000:.0f} ms"
