"""Helpers of the logs and live benchmarks: a lean HTTP/1.1 client, stream readers, CPU accounting.

The load generator shares the machine's cores with the app and PostgreSQL, so its clients are
plain asyncio streams (keep-alive HTTP, hand-parsed SSE; the `websockets` client for /ws): a
heavy client would measure itself, not the server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from tests.support.processes import INTERNAL_KEY, PASSWORD, USER, Proc  # noqa: E402

BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def say(message: str) -> None:
    """Progress on stderr (stdout is the JSON result)."""
    print(message, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary(values_ms: list[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {
        "n": len(values_ms),
        "p50": r(pct(values_ms, 50)),
        "p95": r(pct(values_ms, 95)),
        "p99": r(pct(values_ms, 99)),
        "max": r(max(values_ms, default=None)),
    }


class HTTPConn:
    """One keep-alive HTTP/1.1 connection; requests on it are sequential."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None, *, internal_key: bool = True) -> None:
        split = urlsplit(base_url)
        self.host, self.port = split.hostname or "127.0.0.1", split.port or 80
        self.headers = {**({"X-Internal-Key": INTERNAL_KEY} if internal_key else {}), **(headers or {})}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
        status_line = await self.reader.readline()
        if not status_line:
            self.writer = None
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        chunked = False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            data = b""
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                data += await self.reader.readexactly(size)
                await self.reader.readline()
            return status, data
        return status, await self.reader.readexactly(length) if length else b""

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def stream_path(path: str, params: dict[str, str]) -> str:
    return path + ("?" + urlencode(params) if params else "")


class SSEReader:
    """A raw SSE client: calls `on_frame(event, data_bytes, arrival)` for each frame."""

    def __init__(self, base_url: str, params: dict[str, str], on_frame: Callable[[str, bytes, float], None] | None = None) -> None:
        self.base_url = base_url
        self.params = params
        self.on_frame = on_frame
        self.frames = 0
        self.heartbeats = 0
        self.connected = asyncio.Event()
        self.closed = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> SSEReader:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        split = urlsplit(self.base_url)
        reader, writer = await asyncio.open_connection(split.hostname, split.port)
        request = f"GET {stream_path('/logs/stream', self.params)} HTTP/1.1\r\nHost: {split.hostname}\r\nAuthorization: {BASIC}\r\nAccept: text/event-stream\r\n\r\n"
        writer.write(request.encode())
        try:
            status = await reader.readline()
            if b" 200 " not in status:
                raise RuntimeError(f"SSE answered {status!r}")
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            self.connected.set()
            buffer = b""
            while True:
                size_line = await reader.readline()
                if not size_line:
                    break
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    break
                chunk = await reader.readexactly(size)
                await reader.readline()
                now = time.monotonic()
                blocks = (buffer + chunk).split(b"\n\n")
                buffer = blocks.pop()
                for block in blocks:
                    self._frame(block, now)
        finally:
            self.closed = True
            writer.close()

    def _frame(self, block: bytes, now: float) -> None:
        event = b""
        data = b""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                event = line[7:]
            elif line.startswith(b"data: "):
                data = line[6:]
        if not event:
            return
        if event == b"heartbeat":
            self.heartbeats += 1
            return
        self.frames += 1
        if self.on_frame is not None:
            self.on_frame(event.decode(), data, now)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class WSReader:
    """A /ws client: calls `on_frame(type, frame_dict, arrival)` for each frame."""

    def __init__(self, base_url: str, params: dict[str, str], on_frame: Callable[[str, dict[str, Any], float], None] | None = None) -> None:
        self.url = base_url.replace("http://", "ws://") + stream_path("/ws", params)
        self.on_frame = on_frame
        self.frames = 0
        self.connected = asyncio.Event()
        self.closed = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> WSReader:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        from websockets.asyncio.client import connect

        async with connect(self.url, additional_headers={"Authorization": BASIC}, max_size=None, ping_interval=None) as ws:
            self.connected.set()
            try:
                async for message in ws:
                    now = time.monotonic()
                    self.frames += 1
                    if self.on_frame is not None:
                        frame = json.loads(message)
                        self.on_frame(frame["type"], frame, now)
            finally:
                self.closed = True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Cpu:
    """CPU seconds of named process trees and of the PostgreSQL server over a window (psutil)."""

    def __init__(self, procs: dict[str, Proc | int], database_url: str) -> None:
        self.procs = procs
        self.database_url = database_url
        self._before: dict[str, dict[int, float]] = {}
        self._t0 = 0.0

    def _pg_server(self) -> list[psutil.Process]:
        """The backends connected to the bench database, plus the server's background processes
        (WAL writer, checkpointer, autovacuum…), not other databases' backends on a shared server."""
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            ours = {r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()").fetchall()}
            ours |= {r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'").fetchall()}
        out = []
        for pid in ours:
            try:
                out.append(psutil.Process(pid))
            except psutil.Error:
                pass
        return out

    def _sample(self) -> dict[str, dict[int, float]]:
        groups: dict[str, list[psutil.Process]] = {}
        for name, proc in self.procs.items():
            pid = proc if isinstance(proc, int) else (proc.popen.pid if proc.popen else None)
            try:
                root = psutil.Process(pid) if pid else None
                groups[name] = [root, *root.children(recursive=True)] if root else []
            except psutil.Error:
                groups[name] = []
        groups["postgres"] = self._pg_server()
        groups["loadgen"] = [psutil.Process(os.getpid())]
        out: dict[str, dict[int, float]] = {}
        for name, plist in groups.items():
            out[name] = {}
            for p in plist:
                try:
                    t = p.cpu_times()
                    out[name][p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            out[name + "/wait"] = {pid: _runqueue_wait(pid) for pid in out[name]}
        return out

    def start(self) -> None:
        self._before = self._sample()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, Any]:
        """Cores used per group over the window (per process: a backend that connected during
        the window counts whole, one that exited is lost: our pools are opened beforehand)."""
        wall = time.monotonic() - self._t0
        after = self._sample()
        used = {}
        for name, pids in after.items():
            before = self._before.get(name, {})
            used[name] = round(sum(max(0.0, t - before.get(pid, 0.0)) for pid, t in pids.items()) / wall, 2)
        return {
            "wall_s": round(wall, 2),
            "cores": {k: v for k, v in used.items() if not k.endswith("/wait")},
            # seconds per second a group's threads were ready to run but waited for a core: what
            # other work on the machine (or each other) cost them
            "runqueue_wait": {k.removesuffix("/wait"): v for k, v in used.items() if k.endswith("/wait")},
        }


def _runqueue_wait(pid: int) -> float:
    """Seconds the threads of `pid` spent runnable but not running (Linux schedstat)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return total / 1e9


def server_url() -> str:
    """`OPSLOOP_BENCH_DATABASE_URL`, else the project's embedded server (the tests' one)."""
    url = os.environ.get("OPSLOOP_BENCH_DATABASE_URL")
    if url:
        return url
    from opsloop.backend.embedded_db import start_embedded
    from tests.support.database import EMBEDDED_DIR

    return start_embedded(EMBEDDED_DIR)


class FreshDatabase:
    """A new, migrated database on the bench server, dropped on exit."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.base = ""
        self.name = ""

    def __enter__(self) -> str:
        import uuid

        import psycopg
        from psycopg import sql

        from opsloop.backend.db import upgrade_database
        from tests.support.database import with_database

        self.base = server_url()
        self.name = f"{self.prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        url = with_database(self.base, self.name)
        upgrade_database(url)
        return url

    def __exit__(self, *exc: object) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
