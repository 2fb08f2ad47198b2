"""Real processes for tests: app instances (`opsloop serve`), the echo agent, the Reflex app."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
USER = "admin"
PASSWORD = "test-password-123"
INTERNAL_KEY = "test-internal-key-0123456789"
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "POSTGRES_URL", "RENDER_"))}
    env.update(
        OPSLOOP_IGNORE_DOTENV="1",
        DATABASE_URL=database_url,
        BASIC_AUTH_USER=USER,
        BASIC_AUTH_PASS=PASSWORD,
        INTERNAL_KEY=INTERNAL_KEY,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class Proc:
    """A child process with its log file; `url` answers `/health` once it is up."""

    name: str
    args: list[str]
    env: dict[str, str]
    url: str
    popen: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"{self.name}.log"

    def start(self, wait: bool = True, timeout: float = 60.0) -> Proc:
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen and self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not healthy after {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=15)

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def app_instance(database_url: str, name: str = "app", port: int | None = None, **env: str) -> Proc:
    port = port or free_port()
    args = [sys.executable, "-m", "opsloop.cli", "serve", "--port", str(port), "--no-migrate"]
    return Proc(name, args, base_env(database_url, **env), f"http://127.0.0.1:{port}")


def echo_agent(database_url: str, app_url: str, name: str = "echo", port: int | None = None, **env: str) -> Proc:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "agents.echo", "--port", str(port)]
    return Proc(name, args, base_env(database_url, OPSLOOP_URL=app_url, ECHO_AGENT_URL=url, **env), url)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
