"""Logs benchmark: ingest throughput and search latency on a million rows.

Starts its own `opsloop serve` against a fresh database (embedded PostgreSQL, or a scratch
database on `OPSLOOP_BENCH_DATABASE_URL`), then:

1. **Ingest, batches**: `--batch-clients` keep-alive connections POST /log arrays of
   `--batch-size` lines back to back until `--batch-lines` are stored (target ≥ 50,000 lines/s).
   Then the same number of lines again, straight into PostgreSQL with the same statement (no
   HTTP, no app): the ceiling the database itself sets, with its CPU per line.
2. **Ingest, one line per request**: `--single-clients` connections POST one line each, back to
   back, until `--single-lines` are stored (target ≥ 3,000 lines/s).
   Both count the rows in the database afterwards: every line sent must be stored.
3. **Query**: the table is refilled with `--rows` rows (generate_series with the indexes dropped
   and rebuilt, then ANALYZE), and GET /logs is timed `--queries` times per filter — service,
   trace id, task id, level+since, and `q` (a rare token, a medium one, a common phrase) — with a
   different value each time, one request at a time: p50/p95 in ms, HTTP included
   (target p95 ≤ 20 ms).

    python bench/bench_logs.py [--batch-lines 300000] [--single-lines 30000] [--rows 1000000] [--queries 300]

Prints one JSON object on stdout (progress on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
import psycopg

from bench._logs_common import Cpu, FreshDatabase, HTTPConn, say, summary
from tests.support.processes import app_instance

LEVELS = ("debug", "info", "info", "info", "warn", "error")
WORDS = ("request handled", "cache miss", "upstream timeout", "task claimed", "task done", "retrying call")

LOAD_SQL = """
INSERT INTO logs (ts, service, level, message, data, task_id, correlation_id, trace_id)
SELECT now() - make_interval(secs => (%(rows)s - g) * 0.1),
       'svc-' || (g %% 20),
       CASE WHEN g %% 50 = 0 THEN 'error' WHEN g %% 10 = 1 THEN 'warn' WHEN g %% 10 = 2 THEN 'debug' ELSE 'info' END,
       (ARRAY['request handled', 'cache miss', 'upstream timeout', 'task claimed', 'task done', 'retrying call'])[1 + g %% 6]
         || ' req=' || md5(g::text) || ' path=/api/v1/items/' || (g %% 5000) || ' ',
       jsonb_build_object('i', g),
       md5('task' || (g %% 50000))::uuid,
       'corr-' || (g %% 20000),
       'trace-' || (g %% 100000)
FROM generate_series(1, %(rows)s) g
"""


def make_line(run: str, i: int) -> dict[str, Any]:
    return {
        "service": f"bench-{i % 8}",
        "level": LEVELS[i % 6],
        "message": f"{WORDS[i % 6]} {run} n={i} path=/api/v1/items/{i % 5000}",
        "data": {"i": i, "ms": i % 250},
        "traceId": f"{run}-{i // 10}",
        "correlationId": f"{run}-c{i % 100}",
        "taskId": str(uuid.UUID(int=i + 1)),
    }


async def ingest(base: str, bodies: list[bytes], per_body: int, clients: int) -> dict[str, Any]:
    """POST every body once over `clients` connections; lines/s over the wall time."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        conn = HTTPConn(base)
        try:
            while not queue.empty():
                body = queue.get_nowait()
                t0 = time.perf_counter()
                status, text = await conn.request("POST", "/log", body)
                latencies.append((time.perf_counter() - t0) * 1000)
                if status != 202:
                    errors += 1
                    if errors < 3:
                        say(f"  POST /log → {status} {text[:200]!r}")
        finally:
            await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return {
        "lines": len(bodies) * per_body,
        "requests": len(bodies),
        "clients": clients,
        "seconds": round(wall, 2),
        "lines_per_s": round(len(bodies) * per_body / wall),
        "request_ms": summary(latencies),
        "errors": errors,
    }


async def ingest_database_only(url: str, bodies: list[bytes], clients: int) -> dict[str, Any]:
    """The database's own ceiling: the same batches through the same statement (`insert_json`, as
    `POST /log` runs it), sent by `clients` connections straight from here: no HTTP, no app. The
    HTTP figure can only come close to this one, never above it."""
    from psycopg_pool import AsyncConnectionPool

    from opsloop.backend.logs.repository import insert_json

    queue = [b.decode() for b in reversed(bodies)]
    async with AsyncConnectionPool(url, min_size=clients, max_size=clients, kwargs={"autocommit": True}, open=False) as pool:
        await pool.open(wait=True)
        cpu = Cpu({}, url)
        cpu.start()
        t0 = time.perf_counter()

        async def worker() -> None:
            while queue:
                await insert_json(pool, queue.pop())

        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
        used = cpu.stop()
    lines = sum(b.count(b'"service"') for b in bodies)
    return {"lines": lines, "clients": clients, "seconds": round(wall, 2), "lines_per_s": round(lines / wall), "cpu": per_line(used, lines)}


def per_line(cpu: dict[str, Any], lines: int) -> dict[str, Any]:
    """Cores busy per process group, and CPU microseconds per line: the figure that stays
    meaningful when other work shares the machine's cores."""
    cpu["us_per_line"] = {k: round(v * cpu["wall_s"] * 1e6 / lines, 1) for k, v in cpu["cores"].items()}
    return cpu


def count_rows(url: str, pattern: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM logs WHERE message LIKE %s", (pattern,)).fetchone()[0]


def load_rows(url: str, rows: int) -> float:
    """Refill `logs` with `rows` rows fast: indexes dropped, bulk insert, indexes rebuilt, ANALYZE."""
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        defs = [
            r[0]
            for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'logs' AND indexname <> 'logs_pkey' ORDER BY indexname"
            ).fetchall()
        ]
        names = [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'logs' AND indexname <> 'logs_pkey'").fetchall()]
        conn.execute("TRUNCATE logs")
        for name in names:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("ALTER TABLE logs DISABLE TRIGGER USER")
        conn.execute(LOAD_SQL, {"rows": rows})
        conn.execute("ALTER TABLE logs ENABLE TRIGGER USER")
        conn.execute("SET maintenance_work_mem = '256MB'")
        for d in defs:
            conn.execute(d)
        conn.execute("VACUUM ANALYZE logs")
    return time.perf_counter() - t0


async def query_bench(base: str, rows: int, n: int) -> dict[str, Any]:
    rng = random.Random(7)
    conn = HTTPConn(base)

    def since_iso(hours: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - hours * 3600)) + "Z"

    cases: dict[str, Any] = {
        "service": lambda: {"service": f"svc-{rng.randrange(20)}"},
        "trace_id": lambda: {"traceId": f"trace-{rng.randrange(100000)}"},
        "task_id": lambda: {"taskId": str(uuid.UUID(hex=_md5(f"task{rng.randrange(50000)}")))},
        "level_since": lambda: {"level": rng.choice(["error", "warn"]), "since": since_iso(rng.choice([0.25, 1, 6]))},
        "q_rare": lambda: {"q": _md5(str(rng.randrange(1, rows)))[:12]},
        "q_medium": lambda: {"q": f"items/{rng.randrange(1000, 5000)} "},
        "q_common": lambda: {"q": rng.choice(WORDS)},
    }
    out: dict[str, Any] = {}
    try:
        for name, make in cases.items():
            for _ in range(20):  # warm up: plans cached, pages in memory
                await conn.request("GET", "/logs?" + urlencode(make()))
            times: list[float] = []
            found: list[int] = []
            for _ in range(n):
                path = "/logs?" + urlencode(make())
                t0 = time.perf_counter()
                status, body = await conn.request("GET", path)
                times.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    raise RuntimeError(f"GET {path} → {status} {body[:200]!r}")
                found.append(len(orjson.loads(body)["logs"]))
            out[name] = {**summary(times), "rows_per_answer": round(sum(found) / len(found), 1)}
            say(f"  {name}: p50 {out[name]['p50']} ms, p95 {out[name]['p95']} ms")
    finally:
        await conn.close()
    return out


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - matches the SQL's md5()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"targets": {"batch_lines_per_s": 50000, "single_lines_per_s": 3000, "query_p95_ms": 20}}
    with FreshDatabase("opsloop_bench_logs") as url:
        app = app_instance(url, name="bench-logs-app", OPSLOOP_DISPATCH="0").start()
        try:
            cpu = Cpu({"app": app}, url)
            run = uuid.uuid4().hex[:8]
            say(f"ingest: {args.batch_lines} lines in batches of {args.batch_size} over {args.batch_clients} connections")
            warm = [orjson.dumps([make_line("warm", i) for i in range(args.batch_size)]) for _ in range(10)]
            await ingest(app.url, warm, args.batch_size, args.batch_clients)
            bodies = [
                orjson.dumps([make_line(run + "b", s + i) for i in range(args.batch_size)]) for s in range(0, args.batch_lines, args.batch_size)
            ]
            cpu.start()
            batches = await ingest(app.url, bodies, args.batch_size, args.batch_clients)
            batches["cpu"] = per_line(cpu.stop(), batches["lines"])
            batches["stored"] = count_rows(url, f"% {run}b n=%")
            say(f"  {batches['lines_per_s']} lines/s ({batches['stored']} stored)")
            result["ingest_batches"] = batches

            say(f"ingest, database only: {args.batch_lines} lines in batches of {args.batch_size} over {args.batch_clients} connections")
            direct_bodies = [
                orjson.dumps([make_line(run + "d", s + i) for i in range(args.batch_size)]) for s in range(0, args.batch_lines, args.batch_size)
            ]
            direct = await ingest_database_only(url, direct_bodies, args.batch_clients)
            direct["stored"] = count_rows(url, f"% {run}d n=%")
            say(f"  {direct['lines_per_s']} lines/s ({direct['stored']} stored)")
            result["ingest_batches_database_only"] = direct

            say(f"ingest: {args.single_lines} lines one per request over {args.single_clients} connections")
            singles_bodies = [orjson.dumps(make_line(run + "s", i)) for i in range(args.single_lines)]
            cpu.start()
            singles = await ingest(app.url, singles_bodies, 1, args.single_clients)
            singles["cpu"] = per_line(cpu.stop(), singles["lines"])
            singles["stored"] = count_rows(url, f"% {run}s n=%")
            say(f"  {singles['lines_per_s']} lines/s ({singles['stored']} stored)")
            result["ingest_single"] = singles

            say(f"query: loading {args.rows} rows")
            result["query_rows"] = args.rows
            result["load_seconds"] = round(load_rows(url, args.rows), 1)
            say(f"  loaded in {result['load_seconds']} s; {args.queries} GET /logs per filter")
            result["query_ms"] = await query_bench(app.url, args.rows, args.queries)
        finally:
            app.stop()
    result["meets_targets"] = {
        "ingest_batches": result["ingest_batches"]["lines_per_s"] >= 50000,
        "ingest_single": result["ingest_single"]["lines_per_s"] >= 3000,
        **{f"query_{k}": (v["p95"] or 1e9) <= 20 for k, v in result["query_ms"].items()},
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-lines", type=int, default=300_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batch-clients", type=int, default=4)
    parser.add_argument("--single-lines", type=int, default=30_000)
    parser.add_argument("--single-clients", type=int, default=32)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
