"""Task engine benchmark: end-to-end throughput and create→done latency of echo tasks.

Starts its own stack (a fresh database, `opsloop serve`, the echo agent), then:

1. **Closed loop** at each concurrency (16 and 64 by default): that many HTTP clients POST /task
   back to back until `--tasks` are created; the run ends when every task is `done` *and* its
   three events (created, running, done) and the agent's ECHO_REQUEST/ECHO_RESPONSE log lines
   are stored. Throughput = tasks / (last of those − first POST).
2. **Open loop at half the best throughput**: POSTs at a fixed rate, for the p99 that a
   half-loaded system gives.

Latency is `finished_at − created_at` of each task (both stamped by PostgreSQL). CPU per process
comes from psutil. Prints one JSON object on stdout.

    python bench/bench_tasks.py [--tasks 3000] [--concurrency 16,64] [--instances 1,2] [--py-spy DIR]

Each instance count gets a stack of its own (one app process, then two sharing the database: on
two cores a single Python process is the serial bottleneck).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
import psycopg

from bench._logs_common import HTTPConn
from bench.common import BenchStack, CpuMeter, fresh_database, latency_summary, running_stack, say
from opsloop.backend.auth import basic_header
from tests.support.processes import PASSWORD, USER

# Polled while a run goes on (its cost lands on the database's CPU, so it is kept cheap): the
# task counts first; events and the agent's log lines once every task has ended.
TASKS_SQL = """
SELECT count(*) FILTER (WHERE status = 'done') AS done, count(*) FILTER (WHERE status IN ('error', 'cancelled')) AS failed
FROM tasks WHERE correlation_id = %(c)s AND status IN ('done', 'error', 'cancelled')
"""
TRAIL_SQL = """
SELECT (SELECT count(*) FROM task_events WHERE correlation_id = %(c)s) AS events,
       (SELECT count(*) FROM logs WHERE correlation_id = %(c)s AND service = 'echo-agent-svc'
          AND message IN ('ECHO_REQUEST', 'ECHO_RESPONSE')) AS agent_logs
"""

RESULT_SQL = """
SELECT extract(epoch FROM finished_at - created_at) * 1000 AS ms, attempts, status,
       extract(epoch FROM created_at) AS created, extract(epoch FROM finished_at) AS finished
FROM tasks WHERE correlation_id = %(c)s
"""


IDLE_S = 3.0  # a kept-alive connection idle longer is not reused (uvicorn closes them after 5 s)


class Load:
    """POSTs echo tasks over raw keep-alive HTTP/1.1 connections (`HTTPConn`), with Basic Auth as an
    operator's script would. The load generator shares the machine's two cores with what it
    measures, so it is kept as light as a load tool can be: an HTTP client library (aiohttp) took
    about 0.25 ms of CPU per task, a fifth of the whole system's."""

    def __init__(self, urls: list[str], connections: int) -> None:
        headers = {"Authorization": basic_header(USER, PASSWORD)}
        self.idle: dict[str, list[tuple[HTTPConn, float]]] = {u: [] for u in urls}
        self.slots = asyncio.Semaphore(connections)
        self.urls = urls
        self.headers = headers
        self.errors: dict[str, int] = {}

    async def post(self, i: int, corr: str) -> None:
        url = self.urls[i % len(self.urls)]
        body = orjson.dumps({"type": "echo", "source": "bench", "correlationId": corr, "payload": {"i": i, "bench": "tasks"}})
        async with self.slots:
            idle = self.idle[url]
            conn = None
            while idle and conn is None:
                conn, used = idle.pop()
                if time.monotonic() - used > IDLE_S:  # the server may be closing it: never reuse
                    await conn.close()
                    conn = None
            conn = conn or HTTPConn(url, self.headers, internal_key=False)
            try:
                status, _ = await asyncio.wait_for(conn.request("POST", "/task", body), timeout=30)
            except (OSError, ConnectionError, ValueError, TimeoutError, asyncio.IncompleteReadError) as exc:
                await conn.close()
                self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
                return
            idle.append((conn, time.monotonic()))
            if status != 202:
                self.errors[str(status)] = self.errors.get(str(status), 0) + 1

    async def close(self) -> None:
        for conns in self.idle.values():
            for conn, _ in conns:
                await conn.close()


async def wait_complete(database_url: str, corr: str, n: int, timeout: float) -> tuple[float, dict[str, int]]:
    """Poll until n tasks are done with their events and agent log lines; the time it happened."""
    deadline = time.monotonic() + timeout
    progress = {"done": 0, "failed": 0, "events": 0, "agent_logs": 0}
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if progress["done"] + progress["failed"] < n:
                row = await (await conn.execute(TASKS_SQL, {"c": corr})).fetchone()
                progress.update(done=row[0], failed=row[1])
            if progress["done"] + progress["failed"] >= n:
                row = await (await conn.execute(TRAIL_SQL, {"c": corr})).fetchone()
                progress.update(events=row[0], agent_logs=row[1])
                if progress["events"] >= 3 * n and progress["agent_logs"] >= 2 * n:
                    break
            await asyncio.sleep(0.02)
    return time.monotonic(), progress


def outcome(database_url: str, corr: str, n: int, t0: float, t_end: float, progress: dict[str, int], load: Load) -> dict[str, Any]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(RESULT_SQL, {"c": corr}).fetchall()
    done = [r for r in rows if r[2] == "done"]
    lat = [float(r[0]) for r in done]
    seconds = t_end - t0
    db_span = (max(float(r[4]) for r in done) - min(float(r[3]) for r in rows)) if done else None
    return {
        "tasks": n,
        "seconds": round(seconds, 2),
        "throughput_per_s": round(n / seconds, 1) if seconds else None,
        "db_span_throughput_per_s": round(len(done) / db_span, 1) if db_span else None,
        "done": len(done),
        "lost": n - len(rows) + sum(1 for r in rows if r[2] != "done"),
        "retried": sum(1 for r in rows if r[1] > 1),
        "events": progress["events"],
        "agent_log_lines": progress["agent_logs"],
        "post_errors": load.errors,
        "latency_ms": latency_summary(lat),
    }


async def closed_loop(stack: BenchStack, n: int, concurrency: int) -> dict[str, Any]:
    corr = f"bench-c{concurrency}-{uuid.uuid4().hex[:8]}"
    load = Load([a.url for a in stack.apps], concurrency)
    meter = CpuMeter(stack)
    meter.start()
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < n:
            i = next_i
            next_i += 1
            await load.post(i, corr)

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    t_posted = time.monotonic()
    t_end, progress = await wait_complete(stack.database_url, corr, n, timeout=120 + n / 50)
    cpu = meter.stop(n)
    await load.close()
    result = outcome(stack.database_url, corr, n, t0, t_end, progress, load)
    result["concurrency"] = concurrency
    result["post_rate_per_s"] = round(n / (t_posted - t0), 1)
    result["cpu"] = cpu
    return result


async def open_loop(stack: BenchStack, rate: float, n: int) -> dict[str, Any]:
    """POST at a fixed `rate` (not waiting for answers to send the next), then wait for all."""
    corr = f"bench-rate{int(rate)}-{uuid.uuid4().hex[:8]}"
    load = Load([a.url for a in stack.apps], 256)
    meter = CpuMeter(stack)
    meter.start()
    pending: set[asyncio.Task[None]] = set()
    t0 = time.monotonic()
    late = 0
    for i in range(n):
        target = t0 + i / rate
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.05:
            late += 1
        task = asyncio.create_task(load.post(i, corr))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    t_end, progress = await wait_complete(stack.database_url, corr, n, timeout=120 + n / 50)
    cpu = meter.stop(n)
    await load.close()
    result = outcome(stack.database_url, corr, n, t0, t_end, progress, load)
    result.update(rate_per_s=round(rate, 1), posts_sent_late=late, cpu=cpu)
    return result


# Installed with the project's packages, beside this interpreter (the venv need not be activated).
PY_SPY = str(Path(sys.executable).with_name("py-spy"))


def start_profiles(stack: BenchStack, out_dir: Path, seconds: int) -> list[subprocess.Popen[bytes]]:
    """py-spy on the app and the echo agent for the next `seconds` (collapsed stacks, with idle)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    targets = {**{f"app{i}": a for i, a in enumerate(stack.apps)}, "echo": stack.echo}
    for name, proc in targets.items():
        assert proc.popen is not None
        args = [PY_SPY, "record", "-p", str(proc.popen.pid), "-d", str(seconds), "-r", "200", "-f", "raw", "-o", str(out_dir / f"{name}.txt")]
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def summarise_profile(path: Path, top: int = 12) -> dict[str, Any]:
    """The busiest functions of a py-spy raw profile (self time, % of the non-idle samples). `active_pct`
    counts samples where the loop was not waiting for I/O, including time spent waiting for a CPU."""
    own: dict[str, int] = {}
    idle = total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or "WorkerThread" in stack:
            continue
        frame = stack.rsplit(";", 1)[-1]
        if frame.startswith("Runner.run ") or frame.startswith("run_forever "):  # the loop waiting for I/O
            idle += int(count)
            continue
        total += int(count)
        own[frame] = own.get(frame, 0) + int(count)
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    return {
        "active_pct": round(100 * total / (total + idle), 1) if total + idle else None,
        "top_self_pct": {frame: round(100 * n / total, 1) for frame, n in ranked} if total else {},
    }


async def one_stack(args: argparse.Namespace, instances: int, app_env: dict[str, str]) -> dict[str, Any]:
    """A fresh database and stack with `instances` app processes: warm-up, closed loops, half load."""
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    with fresh_database("opsloop_bench_tasks") as url, running_stack(url, instances=instances, app_env=app_env) as stack:
        say(f"{instances} instance(s) up: {[a.url for a in stack.apps]} + echo {stack.echo.url}")
        warm = await closed_loop(stack, min(500, args.tasks), 16)
        say(f"  warm-up: {warm['throughput_per_s']}/s")
        runs = []
        for c in concurrencies:
            profiles = []
            if args.py_spy and c == max(concurrencies):
                profiles = start_profiles(stack, Path(args.py_spy) / f"instances-{instances}", seconds=max(3, int(args.tasks / 400)))
            run = await closed_loop(stack, args.tasks, c)
            for p in profiles:
                p.wait()
            if profiles:
                out = Path(args.py_spy) / f"instances-{instances}"
                run["profile"] = {f.stem: summarise_profile(f) for f in sorted(out.glob("*.txt"))}
            say(f"  concurrency {c}: {run['throughput_per_s']}/s, p99 {run['latency_ms']['p99']} ms, lost {run['lost']}")
            runs.append(run)
        best = max(r["throughput_per_s"] or 0 for r in runs)
        half = await open_loop(stack, best / 2, max(200, min(args.tasks, int(best / 2 * args.half_seconds))))
        say(f"  half load {half['rate_per_s']}/s: p99 {half['latency_ms']['p99']} ms")
    top = max(runs, key=lambda r: r["throughput_per_s"] or 0)
    cores = os.cpu_count() or 1
    return {
        "instances": instances,
        "closed_loop": runs,
        "half_load": half,
        "summary": {
            "max_throughput_per_s": best,
            "half_load_rate_per_s": half["rate_per_s"],
            "half_load_p99_ms": half["latency_ms"]["p99"],
            "lost": sum(r["lost"] for r in [*runs, half]),
            "cpu_ms_per_task": top["cpu"]["cpu_ms_per_task"]["total"],
            # What the CPU time per task allows if these processes had every core to themselves
            # (other users' work on a shared machine takes its share from the measured figures).
            "cpu_bound_estimate_per_s": round(cores * 1000 / top["cpu"]["cpu_ms_per_task"]["total"]),
            "other_processes_cores": top["cpu"]["other_processes_cores"],
        },
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    app_env = {k: v for k, v in (kv.split("=", 1) for kv in args.app_env)} if args.app_env else {}
    result: dict[str, Any] = {
        "bench": "tasks",
        "tasks_per_run": args.tasks,
        "database": "external" if os.environ.get("OPSLOOP_BENCH_DATABASE_URL") else "embedded",
        "cores": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "app_env": app_env,
        "target": {"throughput_per_s": 1000, "half_load_p99_ms": 100},
        "stacks": [await one_stack(args, int(n), app_env) for n in args.instances.split(",")],
    }
    result["summary"] = {f"instances_{s['instances']}": s["summary"] for s in result["stacks"]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=3000, help="tasks per closed-loop run (default 3000)")
    parser.add_argument("--concurrency", default="16,64", help="comma-separated client concurrencies (default 16,64)")
    parser.add_argument("--instances", default="1,2", help="comma-separated app instance counts, each a stack of its own (default 1,2)")
    parser.add_argument("--half-seconds", type=float, default=8.0, help="length of the half-load run (default 8 s)")
    parser.add_argument("--app-env", action="append", default=[], metavar="K=V", help="extra environment for the app instances")
    parser.add_argument("--py-spy", metavar="DIR", help="record py-spy profiles of the app and agent during the top-concurrency run")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
