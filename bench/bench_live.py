"""Live benchmark: database commit → frame at a WebSocket and an SSE client of ANOTHER instance.

Starts two `opsloop serve` instances, A and B, against a fresh database (embedded PostgreSQL, or
a scratch database on `OPSLOOP_BENCH_DATABASE_URL`), then for `--seconds`:

- `--rate` log lines/s flow into A over HTTP (POST /log, batches of `--flow-batch`);
- `--clients` stream clients are held on B, half WebSocket, half SSE. Each follows a trace of its
  own (the bus checks every change against each of them; they receive heartbeats), except the
  first `--full-flow` of them, which receive the whole flow like a dashboard does;
- one WebSocket and one SSE client on B receive everything;
- every `--probe-ms`, the benchmark itself commits a change straight into PostgreSQL (a log
  line, a task event, a task update, in turn) and notes the time the commit returned; the
  latency is the time until the frame of that change reaches each measuring client on B.

Target: p95 ≤ 50 ms with 500 lines/s flowing and 200 clients held.

    python bench/bench_live.py [--seconds 30] [--rate 500] [--clients 200] [--full-flow 10]

Prints one JSON object on stdout (progress on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson
import psycopg

from bench._logs_common import Cpu, FreshDatabase, HTTPConn, SSEReader, WSReader, say, summary
from tests.support.processes import Proc, app_instance

PROBE_SERVICE = "bench-probe"


class Probes:
    """Commit times of the probe changes, and their arrival times at each measuring client.

    Arrivals are kept whether or not the commit was noted yet: a frame can reach a client (same
    event loop) before the probe loop resumes after its INSERT returned. Such a change counts
    with latency 0 (it arrived within the commit's own round trip)."""

    def __init__(self) -> None:
        self.committed: dict[tuple[str, Any], float] = {}
        self.arrived: dict[str, dict[tuple[str, Any], float]] = {"ws": {}, "sse": {}}
        self.task_versions: dict[str, list[tuple[int, float]]] = {"ws": []}
        self.measuring = False

    def seen(self, client: str, key: tuple[str, Any], at: float) -> None:
        self.arrived[client].setdefault(key, at)

    def seen_task(self, client: str, version: int, at: float) -> None:
        """A task frame carries the row as it is now: it also delivers the earlier versions the
        bus folded into it (two updates fetched together are sent once, at the newest)."""
        self.task_versions[client].append((version, at))

    def _arrival(self, client: str, key: tuple[str, Any]) -> float | None:
        if key[0] != "task":
            return self.arrived[client].get(key)
        return next((at for version, at in self.task_versions.get(client, []) if version >= key[1][1]), None)

    def latencies(self, client: str, kinds: tuple[str, ...]) -> list[float]:
        out = []
        for key, t in self.committed.items():
            at = self._arrival(client, key) if key[0] in kinds else None
            if at is not None:
                out.append(max(0.0, at - t) * 1000)
        return out

    def lost(self, client: str, kinds: tuple[str, ...], before: float) -> list[str]:
        """Changes committed before `before` that never reached `client` (as `kind:id`)."""
        return [f"{k[0]}:{k[1]}" for k, t in self.committed.items() if k[0] in kinds and t < before and self._arrival(client, k) is None]


async def probe_loop(url: str, probes: Probes, every_s: float, stop: asyncio.Event) -> None:
    """Commit one change every `every_s`: log line, task event, task update in turn."""
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        task_id = uuid.uuid4()
        await conn.execute("INSERT INTO tasks (id, type, source, trace_id) VALUES (%s, 'probe', 'bench', %s)", (task_id, "probe-trace"))
        n = 0
        next_at = time.monotonic()
        while not stop.is_set():
            kind = ("log", "event", "task")[n % 3]
            if kind == "log":
                cur = await conn.execute("INSERT INTO logs (service, message) VALUES (%s, %s) RETURNING id", (PROBE_SERVICE, f"probe {n}"))
                key: tuple[str, Any] = ("log", (await cur.fetchone())[0])
            elif kind == "event":
                cur = await conn.execute("INSERT INTO task_events (task_id, actor, kind) VALUES (%s, 'bench', 'probe') RETURNING id", (task_id,))
                key = ("event", (await cur.fetchone())[0])
            else:
                cur = await conn.execute("UPDATE tasks SET version = version + 1, updated_at = now() WHERE id = %s RETURNING version", (task_id,))
                key = ("task", (str(task_id), (await cur.fetchone())[0]))
            if probes.measuring:
                probes.committed[key] = time.monotonic()
            n += 1
            next_at += every_s
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        await conn.close()


async def flow_loop(base: str, rate: int, batch: int, stop: asyncio.Event, sent: list[int]) -> None:
    """POST `rate` lines/s to instance A, `batch` per request, on a steady clock."""
    conn = HTTPConn(base)
    every = batch / rate
    n = 0
    next_at = time.monotonic()
    try:
        while not stop.is_set():
            body = orjson.dumps(
                [{"service": "bench-flow", "message": f"flow line {n + i} " + "x" * 80, "traceId": f"flow-{n // 100}"} for i in range(batch)]
            )
            status, text = await conn.request("POST", "/log", body)
            if status != 202:
                raise RuntimeError(f"POST /log → {status} {text[:200]!r}")
            n += batch
            sent[0] = n
            next_at += every
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        await conn.close()


class HeldClients:
    """The held stream clients, in a child process: their traffic must not delay the measuring
    clients' clock readings in this one."""

    def __init__(self, base: str, count: int, full_flow: int) -> None:
        self.args = (base, count, full_flow)
        self.parent, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(target=_hold, args=(child, *self.args), daemon=True)

    def start(self, timeout: float = 90) -> None:
        self.process.start()
        if not self.parent.poll(timeout):
            raise TimeoutError("held clients did not connect")
        status = self.parent.recv()
        if status != "connected":
            raise RuntimeError(f"held clients: {status}")

    def stop(self) -> dict[str, int]:
        self.parent.send("stop")
        stats = self.parent.recv() if self.parent.poll(30) else {"connected": -1, "frames": -1}
        self.process.join(10)
        return stats

    def terminate(self) -> None:
        if self.process.is_alive():
            self.process.terminate()


def _hold(conn: Any, base: str, count: int, full_flow: int) -> None:
    async def run() -> None:
        held: list[Any] = []
        for i in range(count):
            params = {} if i < full_flow else {"traceId": f"held-{i}"}
            held.append((WSReader if i % 2 == 0 else SSEReader)(base, params).start())
            if i % 20 == 19:
                await asyncio.sleep(0.05)
        try:
            await asyncio.wait_for(asyncio.gather(*(h.connected.wait() for h in held)), timeout=60)
        except Exception as exc:
            conn.send(f"failed: {exc!r}")
            return
        conn.send("connected")
        while not conn.poll():
            await asyncio.sleep(0.2)
        conn.recv()
        conn.send({"connected": sum(1 for h in held if not h.closed), "frames": sum(h.frames for h in held)})
        for h in held:
            await h.stop()

    asyncio.run(run())


def measuring_ws(base: str, probes: Probes) -> WSReader:
    def on_frame(kind: str, frame: dict[str, Any], at: float) -> None:
        data = frame["data"]
        if kind == "LOG" and data["service"] == PROBE_SERVICE:
            probes.seen("ws", ("log", data["id"]), at)
        elif kind == "TASK_EVENT" and data["actor"] == "bench":
            probes.seen("ws", ("event", data["id"]), at)
        elif kind == "TASK_UPDATE" and data["task"]["type"] == "probe":
            probes.seen_task("ws", data["task"]["version"], at)

    return WSReader(base, {}, on_frame)


def measuring_sse(base: str, probes: Probes) -> SSEReader:
    def on_frame(event: str, raw: bytes, at: float) -> None:
        if b"bench" not in raw:  # cheap pre-filter: probe frames name the bench
            return
        data = orjson.loads(raw)
        if event == "log" and data["service"] == PROBE_SERVICE:
            probes.seen("sse", ("log", data["id"]), at)
        elif event == "event" and data["actor"] == "bench":
            probes.seen("sse", ("event", data["id"]), at)

    return SSEReader(base, {}, on_frame)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "target_p95_ms": 50,
        "rate_lines_per_s": args.rate,
        "held_clients": args.clients,
        "held_receiving_everything": args.full_flow,
        "seconds": args.seconds,
    }
    with FreshDatabase("opsloop_bench_live") as url:
        a = app_instance(url, name="bench-live-a", OPSLOOP_DISPATCH="0")
        b = app_instance(url, name="bench-live-b", OPSLOOP_DISPATCH="0")
        procs: list[Proc] = [a, b]
        for p in procs:
            p.start(wait=False)
        for p in procs:
            p.wait_healthy()
        holder = HeldClients(b.url, args.clients, args.full_flow)
        try:
            say(f"holding {args.clients} stream clients on B ({args.full_flow} of them receiving everything), in a process of their own")
            holder.start()
            probes = Probes()
            ws, sse = measuring_ws(b.url, probes).start(), measuring_sse(b.url, probes).start()
            await asyncio.wait_for(asyncio.gather(ws.connected.wait(), sse.connected.wait()), timeout=20)
            async with httpx.AsyncClient() as http:
                subscribers = (await http.get(b.url + "/health", timeout=10)).json()["live"]["subscribers"]
            say(f"B has {subscribers} subscribers; flowing {args.rate} lines/s into A for {args.seconds}s (+{args.warmup}s warm-up)")

            stop = asyncio.Event()
            sent = [0]
            cpu = Cpu({"a": a, "b": b, "held_clients": holder.process.pid or 0}, url)
            loops = [
                asyncio.create_task(flow_loop(a.url, args.rate, args.flow_batch, stop, sent)),
                asyncio.create_task(probe_loop(url, probes, args.probe_ms / 1000, stop)),
            ]
            await asyncio.sleep(args.warmup)
            probes.measuring = True
            sent_before, t0 = sent[0], time.monotonic()
            cpu.start()
            spies = [
                await asyncio.create_subprocess_exec(
                    "py-spy",
                    "record",
                    "-o",
                    f"{args.py_spy}/live-{name}.txt",
                    "-f",
                    "raw",
                    "-d",
                    str(int(args.seconds)),
                    "-p",
                    str(proc.popen.pid),
                    "--nonblocking",
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for name, proc in (("a", a), ("b", b))
                if args.py_spy and proc.popen
            ]
            await asyncio.sleep(args.seconds)
            for spy in spies:
                await asyncio.wait_for(spy.wait(), timeout=30)
            probes.measuring = False
            result["cpu"] = cpu.stop()
            result["flow_achieved_lines_per_s"] = round((sent[0] - sent_before) / (time.monotonic() - t0))
            cutoff = time.monotonic() - 2.0
            await asyncio.sleep(2.0)  # late frames still count (as latency)
            stop.set()
            await asyncio.gather(*loops)

            result["latency_ms"] = {
                "websocket": summary(probes.latencies("ws", ("log", "event", "task"))),
                "sse": summary(probes.latencies("sse", ("log", "event"))),
                "websocket_by_kind": {k: summary(probes.latencies("ws", (k,))) for k in ("log", "event", "task")},
            }
            result["probes"] = {
                "committed": len(probes.committed),
                "lost_websocket": probes.lost("ws", ("log", "event", "task"), cutoff),
                "lost_sse": probes.lost("sse", ("log", "event"), cutoff),
            }
            result["b_subscribers"] = subscribers
            held = holder.stop()
            result["held_still_connected"] = held["connected"]
            result["held_frames_total"] = held["frames"]
            result["measuring_frames"] = {"websocket": ws.frames, "sse": sse.frames}
            lat = result["latency_ms"]
            result["meets_target"] = bool(
                (lat["websocket"]["p95"] or 1e9) <= 50 and (lat["sse"]["p95"] or 1e9) <= 50 and result["held_still_connected"] == args.clients
            )
            say(f"  websocket p50 {lat['websocket']['p50']} p95 {lat['websocket']['p95']} ms; sse p50 {lat['sse']['p50']} p95 {lat['sse']['p95']} ms")
            await ws.stop()
            await sse.stop()
        finally:
            holder.terminate()
            for p in procs:
                p.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--rate", type=int, default=500, help="log lines per second into instance A")
    parser.add_argument("--flow-batch", type=int, default=10, help="lines per POST /log of the flow")
    parser.add_argument("--clients", type=int, default=200, help="stream clients held on instance B")
    parser.add_argument("--full-flow", type=int, default=10, help="how many of the held clients receive every change")
    parser.add_argument("--py-spy", metavar="DIR", help="also record py-spy profiles of A and B (raw format) into DIR")
    parser.add_argument("--probe-ms", type=float, default=20, help="one probe change every N ms")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
