"""The journey of a new operator, end to end: from an empty local Render, one
`opsloop render apply --yes --wait --env-file F` of the project's own render.yaml, against this
checkout's repository, creates the database and the three services and leaves the app and the
echo agent live with `/config/validate` ok on both and `/config/matrix` ok; an echo task
submitted to the deployed app reaches `done` through the deployed agent; a second apply changes
nothing. The env file holds only the operator's password; the Render API token is the
operator's own (environment); nothing sets a secret on Render by hand.

The local Render (`opsloop render fake`, a process) really builds and runs the services from
this repository's committed HEAD (`--repo-map`). Builds reuse this checkout's `.venv`
(`--build-venv`): render.yaml's `pip install -r requirements.txt` then finds every requirement
satisfied instead of downloading ~100 MB; the static site's `reflex export` uses the bun and the
package cache `scripts/bootstrap.sh` installed (`--build-env`). Postgres is a real database on the
test server. No opsloop runs: the CLI runs the apply in its own process (`render_local`), the
task recorded in a scratch database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.database import fresh_database, server_url
from tests.support.processes import ROOT, Proc, base_env, free_port, wait_for

from .conftest import TOKEN, have_reference
from .procs import FakeProc, cli, kinds, tasks_of

REPO = "https://github.com/example/opsloop"
OPERATOR_PASS = "journey-operator-password-0123"
BUN = ROOT / ".tools" / "node_modules" / ".bin" / "bun"

pytestmark = pytest.mark.slow


def local_render(work: Path) -> FakeProc:
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    tools = [
        f"REFLEX_BUN_PATH={BUN}",
        f"BUN_INSTALL_CACHE_DIR={ROOT / '.reflex' / 'bun-cache'}",
        f"REFLEX_DIR={work / 'reflex'}",
        "REFLEX_CHECK_LATEST_VERSION=0",
    ]
    args = [
        *(sys.executable, "-m", "opsloop.cli", "render", "fake", "--port", str(port), "--token", TOKEN, "--rate-scale", "10"),
        *("--work-dir", str(work), "--build-venv", str(ROOT / ".venv"), "--repo-map", f"{REPO}={ROOT}", "--postgres-url", server_url()),
        *(["--validate-openapi"] if have_reference() else []),
        *(arg for pair in tools for arg in ("--build-env", pair)),
    ]
    return FakeProc(Proc("journey-render", args, base_env("postgresql://unused"), root + "/__fake__").start(timeout=30), root)


def current_branch() -> str:
    """This checkout's branch (its committed HEAD is what gets deployed); HEAD when detached (CI)."""
    out = subprocess.run(["git", "symbolic-ref", "--quiet", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout.strip() or "HEAD"


def stop_what_it_started(work: Path) -> None:
    """Safety net: processes still running in the local Render's work folder (it stops them itself)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if Path(os.readlink(entry / "cwd")).is_relative_to(work):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[FakeProc, Path]]:
    if not (BUN.exists() and (ROOT / ".venv" / "bin" / "python").exists()):
        pytest.skip("the journey builds with this checkout's .venv and .tools bun (scripts/bootstrap.sh installs them)")
    work = tmp_path / "render"
    fake = local_render(work)
    try:
        yield fake, tmp_path
    finally:
        fake.stop()
        stop_what_it_started(work)


def services(fake: FakeProc) -> dict[str, dict[str, Any]]:
    with fake.render() as render:
        return {item["service"]["name"]: item["service"] for item in render.get("/services", params={"limit": 100}).json()}


def build_log(fake: FakeProc, service: dict[str, Any]) -> list[str]:
    """Every build log line of a service, through Render's `GET /logs` (paged by time)."""
    params: dict[str, Any] = {"ownerId": service["ownerId"], "resource": service["id"], "type": "build", "direction": "forward", "limit": 100}
    params["startTime"] = "2000-01-01T00:00:00Z"
    lines: list[str] = []
    with fake.render() as render:
        for _ in range(100):
            page = render.get("/logs", params=params).json()
            lines += [entry["message"] for entry in page["logs"]]
            if not page["hasMore"]:
                return lines
            params["startTime"], params["endTime"] = page["nextStartTime"], page["nextEndTime"]
    return lines


def deploy_count(fake: FakeProc, service_id: str) -> int:
    with fake.render() as render:
        return len(render.get(f"/services/{service_id}/deploys", params={"limit": 100}).json())


def test_one_apply_deploys_everything_live_and_valid(world: tuple[FakeProc, Path]) -> None:
    fake, tmp = world
    env_file = tmp / ".env.render"
    env_file.write_text(f"BASIC_AUTH_PASS={OPERATOR_PASS}\n")
    with fresh_database("opsloop_journey") as database_url:  # where the CLI's own opsloop records the task
        journey(fake, env_file, database_url)


def journey(fake: FakeProc, env_file: Path, database_url: str) -> None:
    # The operator's shell: the Render API key, where the repository is, no opsloop running.
    shell = {
        "RENDER_API_TOKEN": TOKEN,
        "RENDER_API_BASE_URL": fake.base_url,
        "OPSLOOP_RENDER_REPO": REPO,
        "OPSLOOP_RENDER_BRANCH": current_branch(),
        "DATABASE_URL": database_url,
    }

    started = time.monotonic()
    first = cli("render", "apply", "--yes", "--wait", "--env-file", str(env_file), env=shell, timeout=900)
    took = time.monotonic() - started
    (ROOT / "test-artifacts" / "render-journey-apply.log").write_text(f"{took:.1f}s\n{first.stdout}\n{first.stderr}")
    assert first.returncode == 0, f"{first.stdout}\n{first.stderr}"
    assert OPERATOR_PASS not in first.stdout + first.stderr and TOKEN not in first.stdout + first.stderr
    (task,) = tasks_of(database_url, "render.apply")  # the whole apply: one task, an event per step
    assert task["status"] == "done" and kinds(database_url, task["id"]).count("render.apply.step") >= 10
    for line in ("ok  opsloop-db: create", "ok  opsloop: create", "ok  opsloop-dashboard: create", "ok  opsloop-echo-agent: create"):
        assert line in first.stdout
    for name in ("opsloop", "opsloop-echo-agent"):
        assert f"ok  {name}: health GET /health: HTTP 200" in first.stdout and f"ok  {name}: config GET /config/validate: ok" in first.stdout

    found = services(fake)
    assert set(found) == {"opsloop", "opsloop-dashboard", "opsloop-echo-agent"}
    app_url = found["opsloop"]["serviceDetails"]["url"]
    with httpx.Client(base_url=app_url, auth=("operator", OPERATOR_PASS), timeout=20) as deployed:
        assert deployed.get("/config/validate").json()["status"] == "ok"
        matrix = deployed.get("/config/matrix").json()["services"]
        assert {r["slug"]: r["status"] for r in matrix} == {"app": "ok", "echo": "ok"}, matrix
        task = deployed.post("/task", json={"type": "echo", "source": "journey", "payload": {"hello": "render"}}).json()
        done = wait_for(
            lambda: (t := deployed.get(f"/task/{task['id']}").json()["task"])["status"] in ("done", "error") and t, timeout=60, what="echo"
        )
        assert done["status"] == "done" and done["result"]["output"]["received"] == {"hello": "render"}
    site = httpx.get(found["opsloop-dashboard"]["serviceDetails"]["url"] + "/index.html", timeout=10)
    assert site.status_code == 200 and "<html" in site.text.lower()
    built = build_log(fake, found["opsloop-dashboard"])
    (ROOT / "test-artifacts" / "render-journey-dashboard-build.log").write_text("\n".join(built))
    assert "==> Running build command 'pip install -r requirements.txt && reflex export --frontend-only --no-zip'..." in built
    assert "==> Uploading build..." in built  # reflex export published .web/build/client

    counts = {name: deploy_count(fake, s["id"]) for name, s in found.items()}
    second = cli("render", "apply", "--yes", "--wait", "--env-file", str(env_file), env=shell, timeout=600)
    assert second.returncode == 0, f"{second.stdout}\n{second.stderr}"
    assert not any(f": {verb}" in second.stdout for verb in ("create", "update", "deploy ", "env ", "link")), second.stdout
    assert {name: deploy_count(fake, s["id"]) for name, s in found.items()} == counts  # nothing changed, nothing redeployed
    if have_reference():
        assert httpx.get(fake.root + "/__fake__/openapi-problems", timeout=10).json()["problems"] == []
