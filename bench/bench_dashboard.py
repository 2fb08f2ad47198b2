"""Dashboard benchmark: first meaningful paint on a big database, and live update delay under load.

With N tasks and M log lines in the database: time from navigation to the first table row of the
tasks view and to the event timeline of a task detail; then, with D dashboards open on the tasks
view while tasks flow at R/s, the app's CPU and memory and the delay from a task's commit to its
row changing on screen (a MutationObserver in one page timestamps every row state it shows).
CPU per pushed update (the app's, and the browser's over all its processes) is reported too: unlike
the delay it barely depends on what else the machine is doing.

    python bench/bench_dashboard.py [--tasks 100000] [--logs 1000000] [--dashboards 20] [--rate 100] [--seconds 30]
                                    [--no-paint] [--launch serve|dev]

The app runs as render.yaml runs it (`opsloop serve --dashboard`); `--launch dev` runs it as the
tests and `opsloop dev` do (uvicorn's defaults, so WebSocket frames are compressed per message).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
import psycopg  # noqa: E402

from tests.support.dashboard import CHROMIUM, CHROMIUM_ARGS, dashboard_process  # noqa: E402
from tests.support.database import fresh_database  # noqa: E402
from tests.support.processes import PASSWORD, USER, Proc, app_instance, echo_agent, wait_for  # noqa: E402

LOAD_SQL = """
ALTER TABLE tasks DISABLE TRIGGER USER;
ALTER TABLE task_events DISABLE TRIGGER USER;
ALTER TABLE logs DISABLE TRIGGER USER;
INSERT INTO tasks (id, type, source, status, payload, result, correlation_id, trace_id, agent_slug, version, attempts,
                   created_at, updated_at, started_at, finished_at)
SELECT gen_random_uuid(), 'echo', 'bench', 'done', jsonb_build_object('i', g), jsonb_build_object('status', 'completed'),
       'bench-' || (g % 500), md5(g::text), 'echo', 3, 1,
       now() - make_interval(secs => g), now() - make_interval(secs => g) + interval '15 ms',
       now() - make_interval(secs => g), now() - make_interval(secs => g) + interval '15 ms'
FROM generate_series(1, %(tasks)s) g;
INSERT INTO task_events (task_id, actor, kind, data, correlation_id, trace_id, ts)
SELECT t.id, k.actor, k.kind, jsonb_build_object('status', k.kind), t.correlation_id, t.trace_id, t.created_at
FROM tasks t CROSS JOIN (VALUES ('bench', 'created'), ('orchestrator', 'running'), ('echo', 'done')) AS k(actor, kind);
INSERT INTO logs (ts, service, level, message, data, task_id, correlation_id, trace_id)
SELECT now() - make_interval(secs => g / 10.0), (ARRAY['echo-agent-svc', 'opsloop', 'bench'])[1 + g % 3],
       (ARRAY['debug', 'info', 'info', 'info', 'warn', 'error'])[1 + g % 6],
       'bench line ' || g || ' ' || md5(g::text), NULL, NULL, 'bench-' || (g % 500), md5((g % %(tasks)s)::text)
FROM generate_series(1, %(logs)s) g;
ALTER TABLE tasks ENABLE TRIGGER USER;
ALTER TABLE task_events ENABLE TRIGGER USER;
ALTER TABLE logs ENABLE TRIGGER USER;
ANALYZE;
"""

OBSERVER_JS = """
() => {
  window.__seen = {};
  const scan = () => {
    const now = Date.now();
    for (const row of document.querySelectorAll('.task-row')) {
      const key = row.dataset.taskId + ':' + row.dataset.status;
      if (!(key in window.__seen)) window.__seen[key] = now;
    }
  };
  scan();
  new MutationObserver(scan).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                     attributeFilter: ['data-status', 'data-task-id']});
}
"""


# Counts the state updates (socket.io event packets) a page receives.
COUNT_UPDATES_JS = """
(() => {
  const Native = window.WebSocket;
  window.__updates = 0;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => { if (typeof e.data === 'string' && e.data.startsWith('42')) window.__updates++; });
    }
  };
})();
"""


def browser_processes() -> list[psutil.Process]:
    """Chromium's processes (browser, renderers, GPU/viz, utilities): children of Playwright's driver."""
    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def load_data(url: str, tasks: int, logs: int) -> float:
    t0 = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LOAD_SQL.replace("%(tasks)s", str(int(tasks))).replace("%(logs)s", str(int(logs))))
    return round(time.monotonic() - t0, 1)


def served_dashboard(url: str, port: int) -> Proc:
    """The dashboard as deployed (render.yaml): `opsloop serve --dashboard`, one port."""
    from opsloop.cli.frontend import build_frontend

    build_frontend()
    origin = f"http://127.0.0.1:{port}"
    proc = app_instance(url, name="bench-dashboard", port=port, WS_ALLOWED_ORIGINS=f"{origin},http://localhost:{port}")
    proc.args += ["--dashboard"]
    return proc


def signed_in_page(context, base: str):
    """A page of `context` after logging in (the session cookie then serves every page of it)."""
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("#username", USER)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_selector("#page-title", timeout=30_000)
    return page


def measure_paint(browser, base: str, path: str, selector: str, runs: int = 5) -> dict[str, float]:
    """Milliseconds from navigation start to `selector` visible, in a logged-in context."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = signed_in_page(context, base)
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        page.goto(base + path)
        page.wait_for_selector(selector, timeout=30_000)
        times.append((time.monotonic() - t0) * 1000)
    context.close()
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1), "runs": runs}


async def produce(base: str, rate: int, seconds: float, corr: str) -> int:
    """POST echo tasks at `rate`/s for `seconds` (open loop, bounded)."""
    sent = 0
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=base, auth=(USER, PASSWORD), timeout=30, limits=limits) as client:
        start = time.monotonic()
        pending: set[asyncio.Task] = set()
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate) - sent
            for _ in range(max(0, due)):
                pending.add(asyncio.create_task(client.post("/task", json={"type": "echo", "source": "bench", "correlationId": corr})))
                sent += 1
            await asyncio.sleep(0.01)
        results = await asyncio.gather(*pending, return_exceptions=True)
    return sum(1 for r in results if isinstance(r, httpx.Response) and r.status_code == 202)


def live_delay(browser, base: str, url: str, dashboards: int, rate: int, seconds: float, app_pid: int) -> dict:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.add_init_script(COUNT_UPDATES_JS)
    signed_in_page(context, base)  # the login sets the cookie every page of this context uses
    pages = []
    for _ in range(dashboards):
        p = context.new_page()
        p.goto(base + "/dashboard/tasks")
        p.wait_for_selector("#status-counts", timeout=60_000)
        pages.append(p)
    watcher = pages[0]
    watcher.bring_to_front()
    watcher.evaluate(OBSERVER_JS)
    proc = psutil.Process(app_pid)
    procs = [proc, *proc.children(recursive=True)]
    for p in procs:
        p.cpu_percent(None)
    chromium = browser_processes()
    sessions = [context.new_cdp_session(p) for p in pages]
    for cdp in sessions:
        cdp.send("Performance.enable")

    def main_thread_s() -> float:
        return sum(m["value"] for cdp in sessions for m in cdp.send("Performance.getMetrics")["metrics"] if m["name"] == "TaskDuration")

    def updates() -> int:
        return sum(p.evaluate("() => window.__updates") for p in pages)

    app_cpu0, browser_cpu0, main0, updates0, t0 = cpu_seconds(procs), cpu_seconds(chromium), main_thread_s(), updates(), time.monotonic()
    corr = f"bench-live-{uuid.uuid4().hex[:6]}"
    rss = []
    import threading

    result: dict[str, int] = {}
    producer = threading.Thread(target=lambda: result.update(sent=asyncio.run(produce(base, rate, seconds, corr))))
    producer.start()
    while producer.is_alive():
        rss.append(sum(p.memory_info().rss for p in procs if p.is_running()))
        watcher.wait_for_timeout(500)
    producer.join()
    watcher.wait_for_timeout(1500)
    cpu = sum(p.cpu_percent(None) for p in procs if p.is_running())
    pushed = updates() - updates0
    elapsed = time.monotonic() - t0
    app_cpu, browser_cpu, main_thread = cpu_seconds(procs) - app_cpu0, cpu_seconds(chromium) - browser_cpu0, main_thread_s() - main0
    seen: dict[str, int] = watcher.evaluate("() => window.__seen")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id::text, extract(epoch FROM finished_at) * 1000 FROM tasks WHERE correlation_id = %s AND status = 'done'", (corr,)
        ).fetchall()
    done_at = {r[0]: float(r[1]) for r in rows}
    delays = [seen[f"{tid}:done"] - ts for tid, ts in done_at.items() if f"{tid}:done" in seen]
    context.close()
    return {
        "dashboards": dashboards,
        "rate_per_s": rate,
        "seconds": seconds,
        "tasks_sent": result.get("sent", 0),
        "tasks_done": len(done_at),
        "rows_observed_done": len(delays),
        "update_delay_ms": {"p50": pct(delays, 0.5), "p95": pct(delays, 0.95), "max": round(max(delays), 1) if delays else None},
        "app_cpu_percent": round(cpu, 1),
        "app_rss_mb": {"max": round(max(rss) / 2**20, 1) if rss else None},
        "updates_per_tab_per_s": round(pushed / dashboards / elapsed, 1),
        "app_cpu_ms_per_update": round(app_cpu * 1000 / max(pushed, 1), 2),
        "browser_cpu_ms_per_update": round(browser_cpu * 1000 / max(pushed, 1), 2),
        "browser_main_thread_ms_per_update": round(main_thread * 1000 / max(pushed, 1), 2),
        "browser_cpu_percent": round(browser_cpu * 100 / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--logs", type=int, default=1_000_000)
    parser.add_argument("--dashboards", type=int, default=20)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--port", type=int, default=3400)
    parser.add_argument("--no-paint", action="store_true", help="skip the first-paint measurements")
    parser.add_argument("--launch", choices=("serve", "dev"), default="serve", help="how the app runs (see above)")
    args = parser.parse_args()
    os.environ.setdefault("OPSLOOP_E2E_PORT", str(args.port))
    if os.environ.get("OPSLOOP_BENCH_DATABASE_URL"):
        os.environ["OPSLOOP_TEST_DATABASE_URL"] = os.environ["OPSLOOP_BENCH_DATABASE_URL"]
    from playwright.sync_api import sync_playwright

    from opsloop.backend.db import upgrade_database

    report: dict = {"bench": "dashboard", "tasks_in_db": args.tasks, "logs_in_db": args.logs, "launch": args.launch}
    with fresh_database("opsloop_bench_dash") as url, ExitStack() as stack:
        upgrade_database(url)
        report["load_s"] = load_data(url, args.tasks, args.logs)
        app = (served_dashboard(url, args.port) if args.launch == "serve" else dashboard_process(url, name="bench-dashboard")).start(timeout=180)
        stack.callback(app.stop)
        echo = echo_agent(url, app.url, name="bench-dashboard-echo").start()
        stack.callback(echo.stop)
        with httpx.Client(base_url=app.url, auth=(USER, PASSWORD)) as c:
            wait_for(lambda: any(a["slug"] == "echo" for a in c.get("/agents").json()["agents"]), timeout=20)
        with psycopg.connect(url) as conn:
            some_task = conn.execute("SELECT id::text FROM tasks ORDER BY updated_at DESC LIMIT 1 OFFSET %s", (args.tasks // 2,)).fetchone()[0]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            if not args.no_paint:
                report["first_paint_tasks"] = measure_paint(browser, app.url, "/dashboard/tasks", ".task-row")
                report["first_paint_task_detail"] = measure_paint(browser, app.url, f"/dashboard/tasks/{some_task}", "#task-events .timeline-event")
            report["live"] = live_delay(browser, app.url, url, args.dashboards, args.rate, args.seconds, app.popen.pid)
            browser.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
