"""Processes refuse to start on bad configuration, naming every bad key and no value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import ROOT, base_env, free_port

SECRET = "tiny-key"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "drop", "bad"),
    [
        (["-m", "opsloop.cli", "serve", "--port", "0"], "BASIC_AUTH_PASS", {"INTERNAL_KEY": SECRET}),
        (["-m", "agents.echo", "--port", "0"], "INTERNAL_KEY", {"ECHO_AGENT_URL": "not a url"}),
    ],
    ids=["app", "echo-agent"],
)
def test_boot_refuses_bad_config(database_url: str, args: list[str], drop: str, bad: dict[str, str]) -> None:
    env = base_env(database_url, **bad)
    env.pop(drop)
    result = run([sys.executable, *args], env)
    assert result.returncode != 0
    assert drop in result.stderr
    for key, value in bad.items():
        assert key in result.stderr
        assert value not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_config_doctor_reports_and_exits_nonzero(database_url: str) -> None:
    env = base_env(database_url)
    ok = run([sys.executable, "-m", "opsloop.cli", "config", "doctor"], env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "app: ok" in ok.stdout and "echo-agent: ok" in ok.stdout
    env.pop("BASIC_AUTH_PASS")
    bad = run([sys.executable, "-m", "opsloop.cli", "config", "doctor", "--service", "app"], env)
    assert bad.returncode == 1
    assert "BASIC_AUTH_PASS" in bad.stdout and "missing" in bad.stdout
    assert env["INTERNAL_KEY"] not in bad.stdout


def test_help_works_without_configuration() -> None:
    env = {"PATH": "/usr/bin:/bin", "OPSLOOP_IGNORE_DOTENV": "1", "HOME": "/tmp"}
    for args in (["-m", "opsloop.cli", "--help"], ["-m", "opsloop.cli", "serve", "--help"], ["-m", "agents.echo", "--help"]):
        result = run([sys.executable, *args], env)
        assert result.returncode == 0, result.stderr
        assert "usage" in result.stdout.lower()
    assert free_port() > 0
