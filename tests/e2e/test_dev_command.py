"""The README's run command, end to end: `opsloop dev` starts an embedded PostgreSQL, migrates,
serves the dashboard and API and the echo agent, and Ctrl-C stops all of it, database included."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import psutil

from tests.support.processes import ARTIFACTS, PASSWORD, ROOT, USER, base_env, free_port, wait_for


def test_dev_runs_everything_and_ctrl_c_stops_it(tmp_path) -> None:
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
