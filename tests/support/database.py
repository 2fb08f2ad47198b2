"""A fresh PostgreSQL database for the test session.

`OPSLOOP_TEST_DATABASE_URL` names a server (CI: the machine's at 127.0.0.1:5432); a new database
is created on it and dropped at the end. Without it, the embedded PostgreSQL of the project is
started under `.pgtest/` (so tests pass on a machine with no server at all).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_DIR = ROOT / ".pgtest" / "postgres"


def server_url() -> str:
    url = os.environ.get("OPSLOOP_TEST_DATABASE_URL")
    if url:
        return url
    from opsloop.backend.embedded_db import start_embedded

    return start_embedded(EMBEDDED_DIR)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name` (works for host and socket URLs)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def fresh_database(prefix: str = "opsloop_test") -> Iterator[str]:
    base = server_url()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(base, name)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
