"""Database access: which server, the psycopg connection pool, and migrations.

Everything on the request path uses one `psycopg_pool.AsyncConnectionPool` per process with
plain SQL (fast, visible); SQLAlchemy is only used by alembic.
"""

from __future__ import annotations

import functools
import time
import weakref
from typing import Any, TypeVar, cast

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

from opsloop.backend import jsonutil
from opsloop.backend.config import PROJECT_ROOT, get_settings

DictPool = AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]  # what `make_pool` makes: dict rows
R = TypeVar("R")

set_json_dumps(jsonutil.dumps_str)
set_json_loads(jsonutil.loads)


def database_url() -> str:
    """The configured server, or the embedded one (started on demand) when none is configured."""
    return get_settings().database_url or _embedded_url()


@functools.cache
def _embedded_url() -> str:
    """Started once per process; later lookups reuse it. Child processes get it from whoever
    starts them (`opsloop dev` passes DATABASE_URL in their environment), not from ours."""
    from opsloop.backend.embedded_db import start_embedded

    return start_embedded()


def sqlalchemy_url(url: str | None = None) -> str:
    """`database_url()` spelled for SQLAlchemy's psycopg 3 dialect."""
    url = url or database_url()
    return "postgresql+psycopg://" + url.split("://", 1)[1]


IDLE_CHECK_S = 2.0
PREPARE_ONLY_WHEN_ASKED = 1 << 30
_returned_at: weakref.WeakKeyDictionary[psycopg.AsyncConnection, float] = weakref.WeakKeyDictionary()


_stale: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()
STALE_PLAN = "cached plan must not change result type"


async def _mark_returned(conn: psycopg.AsyncConnection) -> None:
    if conn in _stale:  # prepared statements made before a schema change: the pool replaces it
        raise psycopg.OperationalError("connection holds stale prepared statements")
    _returned_at[conn] = time.monotonic()


async def execute_prepared(conn: psycopg.AsyncConnection[R], query: str, params: dict[str, object]) -> psycopg.AsyncCursor[R]:
    """Run one of the hot statements as a prepared statement: parsed and planned once per
    connection instead of on every call (about 0.1 ms of database CPU per task, measured).

    A migration that changes a table's columns while this process runs (a rolling deploy) makes
    PostgreSQL refuse a prepared statement returning whole rows of it, before running anything.
    Such a statement is run once more unprepared, and the connection is replaced when it goes
    back to the pool, so the error never reaches a caller.
    """
    try:
        return await conn.execute(query, params, prepare=True)
    except psycopg.errors.FeatureNotSupported as exc:
        if STALE_PLAN not in str(exc):
            raise
        _stale.add(conn)
        return await conn.execute(query, params, prepare=False)


async def _check_if_idle(conn: psycopg.AsyncConnection) -> None:
    """Probe a connection only when it sat idle (a server restart is found there) — a probe on
    every checkout would double the round trips of the hot path."""
    if time.monotonic() - _returned_at.get(conn, 0.0) > IDLE_CHECK_S:
        await AsyncConnectionPool.check_connection(conn)


def make_pool(url: str | None = None, *, min_size: int = 2, max_size: int = 10, name: str = "opsloop") -> DictPool:
    """A pool whose connections return dict rows; opened by the caller (`await pool.open()`)."""
    pool = AsyncConnectionPool(
        url or database_url(),
        min_size=min_size,
        max_size=max_size,
        # only the statements run through `execute_prepared` are prepared (a threshold no
        # other statement reaches): the ad-hoc search statements vary too much to be worth it
        kwargs={"row_factory": dict_row, "autocommit": True, "prepare_threshold": PREPARE_ONLY_WHEN_ASKED},
        open=False,
        name=name,
        check=_check_if_idle,
        reset=_mark_returned,
        reconnect_timeout=3600,
        timeout=5.0,  # a request waits at most this for a connection, then answers 503 (database unavailable)
    )
    return cast(DictPool, pool)  # the row factory above makes every row a dict; the type says so


def upgrade_database(url: str | None = None, revision: str = "head") -> None:
    """`alembic upgrade` to `revision` (idempotent; safe to run at every start)."""
    _alembic("upgrade", revision, url)


def downgrade_database(url: str | None = None, revision: str = "base") -> None:
    _alembic("downgrade", revision, url)


def _alembic(command: str, revision: str, url: str | None) -> None:
    from alembic.config import Config

    from alembic import command as alembic_command

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["url"] = sqlalchemy_url(url)
    cfg.attributes["skip_logging_config"] = True
    getattr(alembic_command, command)(cfg, revision)
