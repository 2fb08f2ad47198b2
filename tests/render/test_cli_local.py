"""The first deploy needs no opsloop running anywhere: with the Render API key in the environment
and no opsloop to ask, `opsloop render apply` runs the same render.apply task in its own process,
recorded (with its events) in the database it uses."""

from __future__ import annotations

from pathlib import Path

from tests.support.database import fresh_database

from .conftest import TOKEN
from .procs import REPO, FakeProc, cli, kinds, tasks_of

FAKE_BUILD_SECONDS = 0.2


def test_apply_runs_here_when_no_opsloop_answers(fake_proc: FakeProc, tmp_path: Path) -> None:
    env_file = tmp_path / ".env.render"
    env_file.write_text("BASIC_AUTH_PASS=first-deploy-password-0123\n")
    with fresh_database("opsloop_render_local") as database_url:
        shell = {"RENDER_API_TOKEN": TOKEN, "RENDER_API_BASE_URL": fake_proc.base_url, "OPSLOOP_RENDER_REPO": REPO, "DATABASE_URL": database_url}
        plan = cli("render", "plan", "--env-file", str(env_file), env=shell)
        assert plan.returncode == 0, plan.stderr
        assert "no opsloop to ask: running it in this process" in plan.stderr and "+ database opsloop-db (postgres): create" in plan.stdout

        applied = cli("render", "apply", "--yes", "--env-file", str(env_file), env=shell)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "ok  opsloop-echo-agent: create" in applied.stdout and "first-deploy-password-0123" not in applied.stdout + applied.stderr
        (task,) = tasks_of(database_url, "render.apply")
        assert task["status"] == "done" and task["source"] == "cli"
        assert {"render.plan", "render.apply.step", "render.apply.done"} <= set(kinds(database_url, task["id"]))

        again = cli("render", "apply", "--local", "--yes", "--env-file", str(env_file), env=shell)
        assert again.returncode == 0 and ": create" not in again.stdout, again.stdout + again.stderr
        no_file = cli("render", "apply", "--local", "--yes", env=shell)
        assert no_file.returncode == 0, no_file.stderr  # the password is on Render now: nothing is missing any more
