"""`opsloop render …` as a user runs it: a real process against a real `opsloop serve` and the
fake Render. Writes go through opsloop (tasks with source `cli`); exit codes and one-line errors
are what a script relies on: 0 ok, 1 failed, 2 usage/configuration, 3 bad outcome."""

from __future__ import annotations

import json

import pytest

from tests.support.processes import PASSWORD, ROOT, USER, Proc, app_instance, free_port

from .conftest import TOKEN, static_site
from .procs import FakeProc, client, tasks_of, wait_deploy_status
from .procs import cli as run


@pytest.fixture(scope="module")
def env(app_proc: Proc) -> dict[str, str]:
    """A shell that knows opsloop (URL and login) but not Render: reads go through opsloop too."""
    return {"OPSLOOP_URL": app_proc.url, "BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": PASSWORD}


@pytest.fixture(scope="module")
def sites(app_proc: Proc) -> dict[str, str]:
    """One static site that builds, one whose latest deploy failed."""
    with client(app_proc) as http:
        ids = {}
        for name, kw in (("cli-good", {}), ("cli-broken", {"publish": "nowhere"})):
            resp = http.post("/render/services", json={"service": static_site(name, **kw)})
            assert resp.status_code == 201, resp.text
            ids[name] = resp.json()["service"]["id"]
            wait_deploy_status(http, ids[name])
    return ids


def one_line_error(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opsloop: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_help_works_without_configuration() -> None:
    for args in (["render", "--help"], ["render", "status", "--help"], ["render", "apply", "--help"], ["render", "fake", "--help"]):
        proc = run(*args, env={})
        assert proc.returncode == 0, proc.stderr
        assert "usage: opsloop render" in proc.stdout
    assert run("render", env={}).returncode == 2  # no subcommand: usage


def test_status_and_list(env: dict[str, str], sites: dict[str, str], fake_proc: FakeProc) -> None:
    proc = run("render", "status", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[1]: line.split()[0] for line in proc.stdout.splitlines()}
    assert lines["cli-good"] == "live" and lines["cli-broken"] == "build_failed"

    failing = run("render", "status", "--fail-on-error", "--name", "cli-good,cli-broken", env=env)
    assert failing.returncode == 3 and "1 of 2 service(s) failed" in failing.stderr
    assert run("render", "status", "--fail-on-error", "--name", "cli-good", env=env).returncode == 0

    # With a Render token the CLI reads Render directly (no opsloop needed for a read).
    direct = run("render", "status", "--json", "--type", "static_site", env={"RENDER_API_TOKEN": TOKEN, "RENDER_API_BASE_URL": fake_proc.base_url})
    assert direct.returncode == 0, direct.stderr
    body = json.loads(direct.stdout)
    assert {s["name"]: s["status"] for s in body["services"]} == {"cli-good": "live", "cli-broken": "build_failed"} and body["failed"] == 1

    listed = run("render", "list", "--name", "cli-good", env=env)
    assert listed.returncode == 0 and listed.stdout.split()[0] == sites["cli-good"]


def test_deploy_wait_and_env(env: dict[str, str], sites: dict[str, str], database_url: str) -> None:
    sid = sites["cli-good"]
    proc = run("render", "deploy", sid, "--wait", "--interval", "0.2", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].endswith(": live")
    assert "live" in proc.stderr  # progress lines
    broken = run("render", "deploy", sites["cli-broken"], "--wait", "--interval", "0.2", env=env)
    assert broken.returncode == 3 and broken.stdout.strip().endswith(": build_failed")

    merged = run("render", "env", sid, "A=1", "B=x=y", "SECRET_TOKEN=abc", env=env)
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout.splitlines() == ["A=1", "B=x=y", "SECRET_TOKEN=***"]
    assert "deploy dep-" in merged.stderr  # the change is deployed
    cleared = run("render", "env", sid, "C=3", "--clear", "--no-deploy", "--json", env=env)
    assert json.loads(cleared.stdout) == {"env": {"C": "3"}, "changed": True, "deploy": None}

    cli_tasks = tasks_of(database_url, "render.env", "source = 'cli'") + tasks_of(database_url, "render.deploy", "source = 'cli'")
    assert len(cli_tasks) == 4 and {t["status"] for t in cli_tasks} == {"done"}


def test_errors_are_one_line_with_script_friendly_exit_codes(env: dict[str, str], database_url: str) -> None:
    missing = run("render", "deploy", "srv-doesnotexist0000", env=env)
    assert missing.returncode == 1
    assert "404" in one_line_error(missing) and "not found: srv-doesnotexist0000" in missing.stderr

    bad_pair = run("render", "env", "srv-abc", "NOEQUALS", env=env)
    assert bad_pair.returncode == 2 and "KEY=VALUE" in one_line_error(bad_pair)
    bad_key = run("render", "env", "srv-abc", "1BAD=x", env=env)
    assert bad_key.returncode == 2 and "'1BAD' is not a valid variable name" in one_line_error(bad_key)

    short = run("render", "fake", "--token", "abc", env={})
    assert short.returncode == 2 and "opsloop would refuse this RENDER_API_TOKEN" in one_line_error(short)

    wrong_login = run("render", "list", env={**env, "BASIC_AUTH_PASS": "wrong-password"})
    assert wrong_login.returncode == 2 and "401" in one_line_error(wrong_login)

    nobody = run("render", "list", env={**env, "OPSLOOP_URL": f"http://127.0.0.1:{free_port()}"})
    assert nobody.returncode == 1 and "cannot reach opsloop" in one_line_error(nobody)

    bad_path = run("render", "plan", "--path", "../../etc/passwd", env=env)
    assert bad_path.returncode == 1 and "outside the repository" in one_line_error(bad_path)

    app = app_instance(database_url, name="render-cli-no-token").start()
    try:
        unconfigured = run("render", "deploy", "srv-abc123", env={**env, "OPSLOOP_URL": app.url})
        assert unconfigured.returncode == 1 and "RENDER_API_TOKEN" in one_line_error(unconfigured)
    finally:
        app.stop()


def test_plan_apply_and_apply_again(env: dict[str, str], database_url: str, tmp_path) -> None:
    plan = run("render", "plan", env=env)
    assert plan.returncode == 0, plan.stderr
    assert "+ opsloop-dashboard (static_site): create" in plan.stdout and "+ database opsloop-db (postgres): create" in plan.stdout
    assert '    staticPublishPath: ".web/build/client"' in plan.stdout
    assert "missing: opsloop: RENDER_API_TOKEN" in plan.stdout  # BASIC_AUTH_PASS comes from the environment

    refused = run("render", "apply", env=env, stdin="")  # not a terminal and no --yes
    assert refused.returncode == 2 and "--yes" in one_line_error(refused)

    missing = run("render", "apply", "--yes", env=env)
    assert missing.returncode == 1 and "nothing was changed" in missing.stderr
    assert "opsloop: RENDER_API_TOKEN: sync: false value missing" in missing.stderr

    env_file = tmp_path / ".env.render"
    env_file.write_text("RENDER_API_TOKEN=rnd_from_the_env_file_0123\nUNRELATED=x\n")
    applied = run("render", "apply", "--yes", "--env-file", str(env_file), env=env)
    assert applied.returncode == 0, applied.stderr
    assert "rnd_from_the_env_file_0123" not in applied.stdout + applied.stderr  # never printed
    created = [line.split()[1] for line in applied.stdout.splitlines() if line.startswith("ok ") and ": create" in line]
    assert created == ["opsloop-db:", "opsloop:", "opsloop-dashboard:", "opsloop-echo-agent:"], applied.stdout
    again = run("render", "apply", "--yes", "--env-file", str(env_file), env=env)
    assert again.returncode == 0 and ": create" not in again.stdout and "deploy" not in again.stdout
    assert "nothing to do" in run("render", "plan", env=env).stdout
    assert run("render", "apply", env=env, stdin="").returncode == 0  # no-op needs no confirmation

    applies = tasks_of(database_url, "render.apply", "source = 'cli'")
    assert [t["status"] for t in applies] == ["error", "done", "done"]


def test_schema_problems_are_shown_even_with_json(env: dict[str, str]) -> None:
    broken = ROOT / "render.broken-cli-test.yaml"
    broken.write_text("services:\n  - type: web\n    name: x\n    runtime: static-site\n")
    try:
        shown = run("render", "plan", "--path", broken.name, env=env)
        assert shown.returncode == 1 and "not valid against Render's Blueprint schema" in shown.stderr
        assert "  - services/0" in shown.stderr  # each problem, on stderr
        as_json = run("render", "plan", "--path", broken.name, "--json", env=env)
        assert as_json.returncode == 1 and json.loads(as_json.stdout)["problems"]
    finally:
        broken.unlink()
