"""The whole app as a user runs it: the built dashboard + API + state socket on one port."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from opsloop.cli.frontend import build_frontend, serve_env
from tests.support.processes import Proc, base_env

E2E_PORT = int(os.environ.get("OPSLOOP_E2E_PORT", "3100"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it with apt-get)")


def dashboard_process(database_url: str, name: str = "dashboard", port: int | None = None, **env: str) -> Proc:
    """The built dashboard served on `port` (default E2E_PORT: one build serves any port)."""
    port = port or E2E_PORT
    public_url = f"http://127.0.0.1:{port}"
    build_frontend()
    env.setdefault("WS_ALLOWED_ORIGINS", f"{public_url},http://localhost:{port}")
    full_env = serve_env(base_env(database_url, **env))
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "opsloop.opsloop:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    return Proc(name, args, full_env, public_url)
