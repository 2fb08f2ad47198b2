"""Real processes for the renderctl tests: the fake Render (`opsloop render fake`) and
`opsloop serve` instances pointed at it, plus small helpers reading the database directly."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from tests.support.processes import PASSWORD, USER, Proc, app_instance, free_port, wait_for

from .conftest import TOKEN

REPO = "https://github.com/example/opsloop"


@dataclass
class FakeProc:
    """`opsloop render fake` as a process; `proc.url` answers `/health` (the fake's `/__fake__/health`)."""

    proc: Proc
    root: str

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def control(self, path: str, body: Any = None) -> Any:
        resp = httpx.post(f"{self.root}/__fake__/{path}", json=body or {}, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def render(self) -> httpx.Client:
        """A plain HTTP client of the fake's API (for changes made "by someone else")."""
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)

    def stop(self) -> None:
        self.proc.stop()


def start_fake(name: str, build_seconds: float = 0.3, rate_scale: float = 1.0) -> FakeProc:
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    args = [
        sys.executable,
        "-m",
        "opsloop.cli",
        "render",
        "fake",
        "--port",
        str(port),
        "--token",
        TOKEN,
        "--build-seconds",
        str(build_seconds),
        "--rate-scale",
        str(rate_scale),
    ]
    from tests.support.processes import base_env

    proc = Proc(name, args, base_env("postgresql://unused"), root + "/__fake__").start(timeout=30)
    return FakeProc(proc, root)


def render_env(fake: FakeProc, **extra: str) -> dict[str, str]:
    return {"RENDER_API_TOKEN": TOKEN, "RENDER_API_BASE_URL": fake.base_url, "OPSLOOP_RENDER_REPO": REPO, **extra}


def start_app(database_url: str, fake: FakeProc, name: str, **extra: str) -> Proc:
    return app_instance(database_url, name=name, **render_env(fake, **extra)).start(timeout=60)


def client(app: Proc, timeout: float = 60.0) -> httpx.Client:
    return httpx.Client(base_url=app.url, auth=(USER, PASSWORD), timeout=timeout)


@contextmanager
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def tasks_of(database_url: str, type_: str, where: str = "", params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with db(database_url) as conn:
        sql = "SELECT * FROM tasks WHERE type = %(type)s" + (f" AND {where}" if where else "") + " ORDER BY created_at"
        return conn.execute(sql, {"type": type_, **(params or {})}).fetchall()


def events_of(database_url: str, task_id: Any) -> list[dict[str, Any]]:
    with db(database_url) as conn:
        return conn.execute("SELECT * FROM task_events WHERE task_id = %(id)s ORDER BY id", {"id": task_id}).fetchall()


def kinds(database_url: str, task_id: Any) -> list[str]:
    return [e["kind"] for e in events_of(database_url, task_id)]


def wait_deploy_status(http: httpx.Client, service_id: str, deploy_id: str | None = None, timeout: float = 20.0) -> dict[str, Any]:
    """Poll `GET /render/services/{id}/deploys` until the deploy (or the latest) leaves the in-progress statuses."""
    busy = {"created", "queued", "build_in_progress", "update_in_progress", "pre_deploy_in_progress"}

    def done() -> dict[str, Any] | None:
        resp = http.get(f"/render/services/{service_id}/deploys", params={"limit": 20})
        assert resp.status_code == 200, resp.text
        deploys = resp.json()["deploys"]
        match = next((d for d in deploys if d["id"] == deploy_id), None) if deploy_id else (deploys[0] if deploys else None)
        return match if match and match["status"] not in busy else None

    return wait_for(done, timeout=timeout, interval=0.2, what=f"deploy {deploy_id or 'latest'} of {service_id} to finish")


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """`python -m opsloop.cli …` with exactly `env` (plus PATH/HOME), no .env file."""
    import os

    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "OPSLOOP_IGNORE_DOTENV": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "opsloop.cli", *args],
        env=full,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
        check=False,
    )
