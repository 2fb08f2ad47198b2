"""Hot statements run prepared, and a schema change under a running process never reaches a caller
(opsloop.backend.db.execute_prepared)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from opsloop.backend.db import execute_prepared, make_pool
from tests.support.database import fresh_database


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with fresh_database("opsloop_prepared") as url:
        yield url


@contextlib.asynccontextmanager
async def one_connection_pool(url: str) -> AsyncIterator[AsyncConnectionPool]:
    """The app's pool, with one connection: a second checkout shows whether it was replaced."""
    pool = make_pool(url, min_size=1, max_size=1)
    await pool.open(wait=True)
    try:
        yield pool
    finally:
        await pool.close()


def test_prepared_then_columns_change(url: str) -> None:
    async def scenario() -> None:
        async with one_connection_pool(url) as pool:
            async with pool.connection() as conn:
                await conn.execute("CREATE TABLE things (id int PRIMARY KEY)")
                await conn.execute("INSERT INTO things VALUES (1)")
                first = conn
                rows = await (await execute_prepared(conn, "SELECT * FROM things WHERE id = %(id)s", {"id": 1})).fetchall()
                assert rows == [{"id": 1}]
                names = await (await conn.execute("SELECT name FROM pg_prepared_statements")).fetchall()
                assert len(names) == 1, "the statement is prepared on the server"
                # what a migration run by a newer instance does meanwhile
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as other:
                    await other.execute("ALTER TABLE things ADD COLUMN label text DEFAULT 'x'")
                rows = await (await execute_prepared(conn, "SELECT * FROM things WHERE id = %(id)s", {"id": 1})).fetchall()
                assert rows == [{"id": 1, "label": "x"}], "answered with the new columns, no error"
            async with pool.connection() as conn:
                assert conn is not first, "the connection with the stale statement was replaced"
                rows = await (await execute_prepared(conn, "SELECT * FROM things WHERE id = %(id)s", {"id": 1})).fetchall()
                assert rows == [{"id": 1, "label": "x"}]

    asyncio.run(scenario())


def test_other_statements_are_not_prepared(url: str) -> None:
    async def scenario() -> None:
        async with one_connection_pool(url) as pool, pool.connection() as conn:
            for _ in range(20):
                await conn.execute("SELECT 1 AS one WHERE %(x)s", {"x": True})
            names = await (await conn.execute("SELECT name FROM pg_prepared_statements")).fetchall()
            assert names == []

    asyncio.run(scenario())
