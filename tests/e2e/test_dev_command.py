"""The README's run command, end to end: `opsloop dev` starts an embedded PostgreSQL, migrates,
serves the dashboard and API and the echo agent; a child killed with -9 comes back while queued
work finishes; Ctrl-C stops all of it, database included. A dashboard build leaves the tracked
`reflex.lock/` files byte-identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil

from tests.support.processes import ARTIFACTS, PASSWORD, ROOT, USER, base_env, free_port, wait_for


def _log() -> str:
    return (ARTIFACTS / "dev-command.log").read_text(errors="replace")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_dev_runs_everything_restarts_a_killed_child_and_ctrl_c_stops_it(tmp_path) -> None:
    port, agent_port = free_port(), free_port()
    env = base_env("unused", OPSLOOP_DATA_DIR=str(tmp_path))
    env.pop("DATABASE_URL")
    env.pop("OPSLOOP_IGNORE_DOTENV")
    log = open(ARTIFACTS / "dev-command.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsloop.cli", "dev", "--port", str(port), "--agent-port", str(agent_port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, (ARTIFACTS / "dev-command.log").read_text()[-2000:]
            try:
                return (
                    httpx.get(base + "/health", timeout=1).status_code == 200
                    and httpx.get(f"http://127.0.0.1:{agent_port}/health", timeout=1).status_code == 200
                )
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=180, interval=0.5, what="opsloop dev to be ready")
        assert (tmp_path / "postgres" / "PG_VERSION").exists(), "the embedded database lives in OPSLOOP_DATA_DIR"
        wait_for(lambda: "opsloop is ready" in (ARTIFACTS / "dev-command.log").read_text(), timeout=10, what="the ready banner")
        assert httpx.get(base + "/login", follow_redirects=True).status_code == 200
        with httpx.Client(base_url=base, auth=(USER, PASSWORD)) as c:
            task = c.post("/task", json={"type": "echo", "source": "dev-test", "payload": {"ok": True}}).json()
            wait_for(lambda: c.get(f"/task/{task['id']}").json()["task"]["status"] == "done", timeout=20, what="echo task done")

            # finding 11: kill -9 the echo agent with tasks queued; it is restarted, nothing fails
            ids = [c.post("/task", json={"type": "echo", "source": "dev-test", "payload": {"sleepMs": 300, "n": i}}).json()["id"] for i in range(30)]
            agent = next(p for p in psutil.Process(proc.pid).children() if "agents.echo" in " ".join(p.cmdline()))
            agent.send_signal(signal.SIGKILL)
            wait_for(lambda: "echo agent exited (code -9); restarting in 1s" in _log(), timeout=20, what="the restart notice")
            wait_for(lambda: "echo agent restarted" in _log(), timeout=20, what="the echo agent restarted")
            wait_for(lambda: _answers(f"http://127.0.0.1:{agent_port}/health"), timeout=60, interval=0.5, what="the echo agent back")
            assert proc.poll() is None and httpx.get(base + "/health", timeout=5).status_code == 200, "the app kept running"

            def statuses() -> dict[str, int]:
                counts: dict[str, int] = {}
                for task_id in ids:
                    status = c.get(f"/task/{task_id}").json()["task"]["status"]
                    counts[status] = counts.get(status, 0) + 1
                return counts

            wait_for(lambda: statuses().get("done") == len(ids) or statuses().get("error"), timeout=120, interval=1, what="the queued tasks to end")
            assert statuses() == {"done": len(ids)}, "tasks queued across the agent's restart must all succeed"

            # the embedded database killed -9 comes back too, and the app works through it again
            postmaster = int((tmp_path / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(postmaster, signal.SIGKILL)
            wait_for(lambda: "embedded PostgreSQL exited" in _log(), timeout=20, what="the database restart notice")
            wait_for(lambda: "embedded PostgreSQL restarted" in _log(), timeout=60, what="the database restarted")
            after = c.post("/task", json={"type": "echo", "source": "dev-test", "payload": {"after": "db restart"}})
            wait_for(
                lambda: after.status_code == 202 and c.get(f"/task/{after.json()['id']}").json()["task"]["status"] == "done",
                timeout=60,
                interval=0.5,
                what="a task done after the database restart",
            )
        children = psutil.Process(proc.pid).children(recursive=True)
        postgres = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
        assert postgres, "embedded postgres is running"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children + postgres):
            time.sleep(0.2)
        alive = [p for p in children + postgres if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"still running after Ctrl-C: {alive}"
    finally:
        # whatever happened above, leave no process of ours behind (dev's children have their own sessions)
        leftovers = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for child in leftovers:
            if child.is_running():
                child.kill()
        log.close()


def test_a_dashboard_build_leaves_the_tracked_lock_files_unchanged() -> None:
    """Reflex writes `reflex.lock/package.json` back reformatted after its install; the build
    puts the committed bytes back, so a fresh checkout stays clean after the README's command."""
    from opsloop.cli.frontend import build_frontend

    lock_dir = ROOT / "reflex.lock"
    before = {p.name: p.read_bytes() for p in lock_dir.iterdir()}
    clean = subprocess.run(["git", "diff", "--quiet", "--", "reflex.lock"], cwd=ROOT).returncode == 0
    build_frontend(force=True)
    assert {p.name: p.read_bytes() for p in lock_dir.iterdir()} == before
    if clean:
        assert subprocess.run(["git", "diff", "--quiet", "--", "reflex.lock"], cwd=ROOT).returncode == 0
