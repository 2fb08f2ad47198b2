"""The local Render boots what it deploys: a service whose repository it can reach (a git folder
here) is checked out, built, pre-deployed and started with Render's env, and is `live` only when
its health check answers; each failure has Render's status and the command's own log lines
(read back through Render's `GET /logs`, as the monitor and `apply --wait` do). Static sites are
published and served; `fromService hostport` reaches the service; Postgres instances are real
databases. Every exchange is checked against Render's OpenAPI document (the `render` fixture)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio

from opsloop.devtools.render_fake.app import create_fake_render_app
from opsloop.devtools.render_fake.runner import Runner
from opsloop.render.blueprint import blueprint_from_dict
from opsloop.render.blueprint_apply import StepResult, apply
from opsloop.render.blueprint_plan import plan_against
from opsloop.render.blueprint_wait import wait_and_check
from opsloop.render.client import RenderClient, Throttle
from tests.support.database import server_url

from .conftest import TOKEN, FakeServer, Recorder, Sleeps, have_reference, owner_id, serve, stop
from .procs import cli

PY = sys.executable
APP = textwrap.dedent(
    """
    import json, os, sys, urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if os.environ.get("CRASH"):
        print("crashing on purpose", flush=True)
        sys.exit(4)
    KEYS = ("PORT", "RENDER", "RENDER_SERVICE_NAME", "RENDER_EXTERNAL_URL", "RENDER_INTERNAL_HOSTNAME", "GREETING", "PEER", "RENDER_GIT_COMMIT")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/health" and not os.environ.get("UNHEALTHY"):
                body = b"ok"
            elif self.path == "/env":
                body = json.dumps({k: os.environ.get(k) for k in KEYS} | {"built": open("built.txt").read()}).encode()
            elif self.path == "/peer":
                body = urllib.request.urlopen("http://" + os.environ["PEER"] + "/health", timeout=5).read()
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

    print("listening on", os.environ["PORT"], flush=True)
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
    """
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository with a tiny web app and a static site."""
    path = tmp_path_factory.mktemp("local-render-repo")
    (path / "app.py").write_text(APP)
    (path / "site").mkdir()
    (path / "site" / "index.html").write_text("<h1>hello from the static site</h1>")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "app"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    return path


@pytest.fixture(scope="module")
def local_render(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServer]:
    runner = Runner(tmp_path_factory.mktemp("local-render-work"), health_timeout=5.0)
    app = create_fake_render_app(token=TOKEN, build_seconds=0.05, validate_openapi=have_reference(), runner=runner, postgres_url=server_url())
    fake = serve(app)
    runner.api_url = fake.base_url
    yield fake
    stop(fake)


@pytest_asyncio.fixture
async def render(local_render: FakeServer, recorder: Recorder, sleeps: Sleeps) -> AsyncIterator[RenderClient]:
    local_render.control("reset")
    client = RenderClient(local_render.base_url, TOKEN, transport=recorder, sleep=sleeps, throttle=Throttle(scale=1000, sleep=sleeps))
    yield client
    await client.aclose()
    if have_reference():
        assert recorder.problems() == []
        assert local_render.problems() == []


def web(repo: Path, name: str, env: dict[str, str] | None = None, **commands: str) -> dict[str, Any]:
    specific = {
        "buildCommand": commands.get("build", "echo building && echo built > built.txt"),
        "startCommand": commands.get("start", f"{PY} app.py"),
    }
    details: dict[str, Any] = {"runtime": "python", "envSpecificDetails": specific, "healthCheckPath": "/health"}
    if "pre" in commands:
        details["preDeployCommand"] = commands["pre"]
    body = {"type": "web_service", "name": name, "repo": str(repo), "branch": "main", "serviceDetails": details}
    return {**body, "envVars": [{"key": k, "value": v} for k, v in (env or {}).items()]}


async def finished(client: RenderClient, sid: str, deploy_id: str, timeout: float = 60.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        deploy = await client.get_deploy(sid, deploy_id)
        if deploy["status"] not in {"created", "queued", "build_in_progress", "update_in_progress", "pre_deploy_in_progress"}:
            return deploy
        assert loop.time() < deadline, f"deploy {deploy_id} still {deploy['status']}"
        await asyncio.sleep(0.1)


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(url)


async def create(client: RenderClient, fake: FakeServer, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    created = await client.create_service({**body, "ownerId": owner_id(fake)})
    return created["service"], await finished(client, created["service"]["id"], created["deployId"])


async def test_a_service_is_built_started_and_live_only_when_its_health_check_answers(
    render: RenderClient, local_render: FakeServer, repo: Path
) -> None:
    service, deploy = await create(render, local_render, web(repo, "local-app", {"GREETING": "hi"}, pre="echo migrating"))
    assert deploy["status"] == "live"
    head = (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
    assert deploy["commit"]["id"] == head
    service = await render.get_service(service["id"])
    url = service["serviceDetails"]["url"]
    env = (await get(url + "/env")).json()
    assert env["GREETING"] == "hi" and env["RENDER"] == "true" and env["RENDER_SERVICE_NAME"] == "local-app"
    assert env["RENDER_EXTERNAL_URL"] == url and env["RENDER_INTERNAL_HOSTNAME"] == service["slug"] and env["RENDER_GIT_COMMIT"] == head
    assert env["PORT"] != url.rsplit(":", 1)[1] and env["built"] == "built\n"  # its own port, behind the service's stable one
    logs = await render.build_logs(service["id"], deploy["id"])
    for line in ("==> Running build command 'echo building && echo built > built.txt'...", "building", "migrating", "==> Your service is live 🎉"):
        assert line in logs, (line, logs)

    again = await render.trigger_deploy(service["id"])
    assert again is not None and (await finished(render, service["id"], again["id"]))["status"] == "live"
    assert "==> Using the build cache of this commit for 'echo building && echo built > built.txt'" in await render.build_logs(
        service["id"], again["id"]
    )
    assert (await get(url + "/health")).text == "ok"  # the same address, the new process


@pytest.mark.parametrize(
    ("commands", "env", "status", "line"),
    [
        ({"build": "echo 'npm ERR! boom' && exit 3"}, {}, "build_failed", "npm ERR! boom"),
        ({"pre": "echo 'migration refused' && false"}, {}, "pre_deploy_failed", "migration refused"),
        ({}, {"CRASH": "1"}, "update_failed", "crashing on purpose"),
        ({}, {"UNHEALTHY": "1"}, "update_failed", "==> Timed out: /health did not answer in 5s"),
    ],
    ids=["build", "pre-deploy", "exits", "unhealthy"],
)
async def test_each_failure_has_renders_status_and_the_commands_lines(
    render: RenderClient, local_render: FakeServer, repo: Path, commands: dict[str, str], env: dict[str, str], status: str, line: str
) -> None:
    service, deploy = await create(render, local_render, web(repo, f"local-{status}", env, **commands))
    assert deploy["status"] == status
    assert line in await render.build_logs(service["id"], deploy["id"])
    deploys, _ = await render.list_deploys(service["id"])
    assert "live" not in {d["status"] for d in deploys}


async def test_static_sites_are_published_and_references_reach_the_service(render: RenderClient, local_render: FakeServer, repo: Path) -> None:
    site = {
        "type": "static_site",
        "name": "local-site",
        "repo": f"file://{repo}",
        "branch": "main",
        "serviceDetails": {"buildCommand": "echo site", "publishPath": "site"},
    }
    created, deploy = await create(render, local_render, site)
    assert deploy["status"] == "live"
    url = (await render.get_service(created["id"]))["serviceDetails"]["url"]
    assert "hello from the static site" in (await get(url + "/index.html")).text

    target, _ = await create(render, local_render, web(repo, "local-target"))
    peer, deploy = await create(render, local_render, web(repo, "local-peer", {"PEER": f"{target['slug']}:10000"}))  # fromService hostport
    assert deploy["status"] == "live"
    peer_url = (await render.get_service(peer["id"]))["serviceDetails"]["url"]
    assert (await get(peer_url + "/peer")).text == "ok"  # Render's private address reaches it


async def test_postgres_instances_are_real_databases(render: RenderClient, local_render: FakeServer) -> None:
    created = await render.create_postgres({"name": "local-db", "plan": "basic_256mb", "version": "16", "ownerId": owner_id(local_render)})
    assert created["status"] == "creating"
    for _ in range(100):
        if (await render.get_postgres(created["id"]))["status"] == "available":
            break
        await asyncio.sleep(0.05)
    info = await render.postgres_connection_info(created["id"])
    assert len(info["password"]) == 32
    with psycopg.connect(info["internalConnectionString"], autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        assert conn.execute("SELECT current_user").fetchone()[0] == created["databaseUser"]
    local_render.control("reset")  # drops what it created
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(info["internalConnectionString"], connect_timeout=5).close()


async def test_render_status_never_calls_live_a_service_that_does_not_answer(render: RenderClient, local_render: FakeServer, repo: Path) -> None:
    service, deploy = await create(render, local_render, web(repo, "local-status"))
    assert deploy["status"] == "live"
    env = {"RENDER_API_TOKEN": TOKEN, "RENDER_API_BASE_URL": local_render.base_url}
    healthy = await asyncio.to_thread(cli, "render", "status", "--json", "--fail-on-error", env=env)
    assert healthy.returncode == 0, healthy.stderr
    assert [(r["status"], r["health"]) for r in json.loads(healthy.stdout)["services"]] == [("live", "ok")]

    os.killpg(local_render.state.runner.live[service["id"]].process.pid, signal.SIGKILL)  # it dies; the deploy stays "live"
    sick = await asyncio.to_thread(cli, "render", "status", "--fail-on-error", env=env)
    assert sick.returncode == 3 and sick.stdout.split()[0] == "unhealthy", sick.stdout


async def test_wait_names_the_service_that_is_not_live_or_not_valid(render: RenderClient, local_render: FakeServer, repo: Path) -> None:
    data = {
        "services": [
            {"type": "web", "name": "wait-good", "runtime": "python", "buildCommand": "echo built > built.txt", "startCommand": f"{PY} app.py"},
            {
                "type": "web",
                "name": "wait-sick",
                "runtime": "python",
                "buildCommand": "true",
                "startCommand": f"{PY} app.py",
                "healthCheckPath": "/health",
            },
        ]
    }
    data["services"][1]["envVars"] = [{"key": "CRASH", "value": "1"}]
    blueprint = blueprint_from_dict(data, repo=str(repo), branch="main")
    owner = owner_id(local_render)
    result = await apply(render, await plan_against(render, blueprint, owner), owner, poll_s=0.05)
    assert result.ok, result.to_dict()
    seen: list[StepResult] = []

    async def record(step: StepResult) -> None:
        seen.append(step)

    ok = await wait_and_check(render, blueprint, result, on_step=record, poll_s=0.1)
    assert not ok
    by = {(s.service, s.action): s for s in seen}
    assert by[("wait-good", "deployed")].ok and by[("wait-good", "config")].ok is False  # no /config/validate: not ok
    assert not by[("wait-sick", "deployed")].ok and "update_failed" in by[("wait-sick", "deployed")].detail
    assert "crashing on purpose" in by[("wait-sick", "deployed")].detail  # the last log lines say why
    assert by[("wait-sick", "health")].detail == "latest deploy is update_failed, not live"
