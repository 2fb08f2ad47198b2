"""`opsloop dev`: everything locally — database, migrations, dashboard + API, echo agent.

First run writes a git-ignored `.env` with a random password and internal key and prints the
login. Each child's output is prefixed with its name. A child that dies is restarted with backoff
while the others keep running (`supervisor.py`); Ctrl-C or SIGTERM stops them all, and the
embedded database too when we started it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import httpx

from opsloop.backend.config import ENV_FILE, get_settings, require_valid_config
from opsloop.cli.supervisor import EmbeddedDatabaseChild, ProcessChild, Supervisor

COLORS = {"app": "\033[36m", "echo": "\033[35m", "db": "\033[33m"}
RESET = "\033[0m"


def ensure_env_file(path: Path = ENV_FILE) -> str | None:
    """Write `.env` with fresh secrets on first run; returns the new password (else None).

    Not when the environment already carries the credentials (CI, a deployment, the tests)."""
    if path.exists() or all(os.environ.get(k) for k in ("BASIC_AUTH_USER", "BASIC_AUTH_PASS", "INTERNAL_KEY")):
        return None
    password = secrets.token_urlsafe(12)
    path.write_text(
        "# Written by `opsloop dev` on first run; git-ignored. See .env.example for every key.\n"
        "BASIC_AUTH_USER=admin\n"
        f"BASIC_AUTH_PASS={password}\n"
        f"INTERNAL_KEY={secrets.token_hex(24)}\n"
    )
    path.chmod(0o600)
    return password


def say(who: str, line: str) -> None:
    color = COLORS.get(who, "") if sys.stdout.isatty() else ""
    sys.stdout.write(f"{color}[{who:<4}]{RESET if color else ''} {line}\n")
    sys.stdout.flush()


def wait_healthy(url: str, child: ProcessChild, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = child.exit_status()
        if status is not None:
            raise RuntimeError(f"{child.label} at {url} exited ({status}) before it was healthy")
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not healthy after {timeout:.0f}s")


def run(args: argparse.Namespace) -> int:
    new_password = ensure_env_file()
    get_settings.cache_clear()
    require_valid_config("app")
    settings = get_settings()
    from opsloop.backend import db
    from opsloop.backend.embedded_db import DEFAULT_DATA_DIR
    from opsloop.cli.frontend import build_frontend, serve_command, serve_env

    own_database = settings.database_url is None
    if own_database:
        say(
            "db",
            f"starting embedded PostgreSQL in {DEFAULT_DATA_DIR.relative_to(Path.cwd()) if DEFAULT_DATA_DIR.is_relative_to(Path.cwd()) else DEFAULT_DATA_DIR}",
        )
    supervisor = Supervisor(say)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and a plain `kill` both stop everything; SIGINT is set explicitly because a shell that
    # starts us in the background leaves it ignored.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        url = db.database_url()
        if own_database:
            supervisor.watch(EmbeddedDatabaseChild(DEFAULT_DATA_DIR))
        say("db", "applying migrations")
        db.upgrade_database(url)
        public_url = f"http://127.0.0.1:{args.port}"
        agent_url = f"http://127.0.0.1:{args.agent_port}"
        say("app", "building the dashboard (skipped when nothing changed)…")
        t0 = time.monotonic()
        built = build_frontend()
        say("app", f"dashboard {'built' if built else 'up to date'} ({time.monotonic() - t0:.1f}s)")
        base = {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
        if not settings.WS_ALLOWED_ORIGINS or "WS_ALLOWED_ORIGINS" not in os.environ:
            # the browser's origin must be allowed on the state socket, whatever port we run on
            base["WS_ALLOWED_ORIGINS"] = ",".join(dict.fromkeys([*settings.allowed_origins, public_url, f"http://localhost:{args.port}"]))
        app = ProcessChild("app", "app", serve_command("127.0.0.1", args.port), serve_env(base), say)
        app.start()
        supervisor.watch(app)
        wait_healthy(public_url, app)
        echo_env = {**base, "OPSLOOP_URL": public_url, "ECHO_AGENT_URL": agent_url}
        echo = ProcessChild("echo", "echo agent", [sys.executable, "-m", "agents.echo", "--port", str(args.agent_port)], echo_env, say)
        echo.start()
        supervisor.watch(echo)
        wait_healthy(agent_url, echo)
        login = (
            f"{settings.BASIC_AUTH_USER} / {new_password}   (saved in .env)"
            if new_password
            else (f"{settings.BASIC_AUTH_USER} (password: BASIC_AUTH_PASS in .env or the environment)")
        )
        print(f"\n  opsloop is ready:  {public_url}\n  log in as {login}\n  Ctrl-C stops everything.\n", flush=True)
        supervisor.run_forever()  # a child that dies is restarted with backoff; only a signal ends this
        return 0
    except KeyboardInterrupt:
        say("dev", "stopping…")
        return 0
    finally:
        if own_database and not any(isinstance(s.child, EmbeddedDatabaseChild) for s in supervisor.slots):
            supervisor.watch(EmbeddedDatabaseChild(DEFAULT_DATA_DIR))  # started, then interrupted before it was watched
        supervisor.stop_all()
        if own_database:
            say("db", "stopped embedded PostgreSQL")
