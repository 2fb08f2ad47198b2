"""Shared benchmark plumbing: a fresh database, the processes under test, CPU accounting, percentiles.

Benchmarks start real processes (`opsloop serve`, the echo agent) like the integration tests do,
against a database of their own: `OPSLOOP_BENCH_DATABASE_URL` names a server where a scratch
database is created and dropped; without it the project's embedded PostgreSQL (the tests' one,
under `.pgtest/`) is used. Progress goes to stderr; stdout carries only the JSON result.
"""

from __future__ import annotations

import math
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from tests.support.database import EMBEDDED_DIR, with_database  # noqa: E402
from tests.support.processes import PASSWORD, USER, Proc, app_instance, echo_agent, wait_for  # noqa: E402


def say(message: str) -> None:
    """Progress on stderr (stdout is the JSON result)."""
    print(message, file=sys.stderr, flush=True)


def server_url() -> str:
    url = os.environ.get("OPSLOOP_BENCH_DATABASE_URL")
    if url:
        return url
    from opsloop.backend.embedded_db import start_embedded

    return start_embedded(EMBEDDED_DIR)


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new, migrated database on the bench server; dropped afterwards."""
    from opsloop.backend.db import upgrade_database

    base = server_url()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(base, name)
    try:
        upgrade_database(url)
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass
class BenchStack:
    """App instances and the echo agent, started against `database_url`."""

    database_url: str
    apps: list[Proc]
    echo: Proc

    @property
    def url(self) -> str:
        return self.apps[0].url

    def stop(self) -> None:
        self.echo.stop()
        for app in self.apps:
            app.stop()


@contextmanager
def running_stack(database_url: str, *, instances: int = 1, name: str = "bench", app_env: dict[str, str] | None = None) -> Iterator[BenchStack]:
    """Start `instances` app instances and one echo agent (registered with the first instance)."""
    apps = [app_instance(database_url, name=f"{name}-app-{i}", **(app_env or {})) for i in range(instances)]
    stack = BenchStack(database_url, apps, echo_agent(database_url, apps[0].url, name=f"{name}-echo"))
    try:
        for app in apps:
            app.start(wait=False)
        for app in apps:
            app.wait_healthy()
        stack.echo.start()
        with httpx.Client(base_url=stack.url, auth=(USER, PASSWORD)) as c:
            wait_for(
                lambda: any(a["slug"] == "echo" and a["url"] == stack.echo.url for a in c.get("/agents").json()["agents"]),
                timeout=20,
                what="echo agent registration",
            )
        yield stack
    finally:
        stack.stop()


def pct(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of `values`, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(values_ms: list[float]) -> dict[str, float | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    return {"p50": r(pct(values_ms, 50)), "p95": r(pct(values_ms, 95)), "p99": r(pct(values_ms, 99)), "max": r(max(values_ms, default=None))}


@dataclass
class CpuMeter:
    """CPU seconds per role over a window, from psutil: each app instance, the echo agent, the
    PostgreSQL backends serving the bench database, the rest of the PostgreSQL server (WAL
    writer, checkpointer…; shared with other users of an external server), and this process."""

    stack: BenchStack
    _start: dict[str, dict[int, float]] = field(default_factory=dict)
    _machine0: float = 0.0
    _t0: float = 0.0

    def _roles(self) -> dict[str, list[psutil.Process]]:
        roles: dict[str, list[psutil.Process]] = {}
        for i, app in enumerate(self.stack.apps):
            roles[f"app{i}" if len(self.stack.apps) > 1 else "app"] = _tree(app.popen.pid if app.popen else None)
        roles["echo"] = _tree(self.stack.echo.popen.pid if self.stack.echo.popen else None)
        backends, server = _postgres(self.stack.database_url)
        roles["postgres_backends"] = backends
        roles["postgres_other"] = server
        roles["loadgen"] = [psutil.Process()]
        return roles

    @staticmethod
    def _times(procs: list[psutil.Process]) -> dict[int, float]:
        out = {}
        for p in procs:
            try:
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
            except psutil.Error:
                pass
        return out

    def start(self) -> None:
        self._start = {role: self._times(procs) for role, procs in self._roles().items()}
        self._machine0 = _machine_busy_s()
        self._t0 = time.monotonic()

    def stop(self, tasks: int) -> dict[str, Any]:
        wall = time.monotonic() - self._t0
        machine = _machine_busy_s() - self._machine0
        used: dict[str, float] = {}
        for role, procs in self._roles().items():
            before = self._start.get(role, {})
            used[role] = sum(max(0.0, t - before.get(pid, 0.0)) for pid, t in self._times(procs).items())
        total = sum(used.values())
        return {
            "wall_s": round(wall, 2),
            "cpu_s": {k: round(v, 2) for k, v in used.items()},
            "share_pct": {k: round(100 * v / total, 1) if total else 0.0 for k, v in used.items()},
            "cores_busy": round(total / wall, 2) if wall else None,
            # Whatever else ran on the machine meanwhile (other users' work competes for the cores).
            "other_processes_cores": round(max(0.0, machine - total) / wall, 2) if wall else None,
            "cpu_ms_per_task": {k: round(1000 * v / tasks, 3) for k, v in used.items()} | {"total": round(1000 * total / tasks, 3)},
        }


def _machine_busy_s() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _postgres(database_url: str) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """(backends connected to the bench database, the server's other processes)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        ours = {r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()").fetchall()}
        postmaster = conn.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'").fetchone()
    backends, other = [], []
    for pid in ours:
        try:
            backends.append(psutil.Process(pid))
        except psutil.Error:
            pass
    if postmaster:
        try:
            parent = psutil.Process(postmaster[0]).parent()
            if parent is not None:
                for child in parent.children():
                    if child.pid not in ours and _is_background(child):
                        other.append(child)
                other.append(parent)
        except psutil.Error:
            pass
    return backends, other


def _is_background(p: psutil.Process) -> bool:
    """Server processes that are not client backends (those belong to whoever is connected)."""
    try:
        title = " ".join(p.cmdline())
    except psutil.Error:
        return False
    return any(k in title for k in ("checkpointer", "writer", "walwriter", "autovacuum", "logical replication", "stats", "io worker", "wal"))
