"""Migrations: a fresh database upgrades, downgrades and upgrades again; models match the schema."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from opsloop.backend.db import downgrade_database, sqlalchemy_url, upgrade_database
from opsloop.backend.models import metadata
from tests.support.database import fresh_database

TABLES = {"tasks", "task_events", "logs", "agent_heartbeats", "render_fixes"}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def test_upgrade_downgrade_upgrade_and_no_drift() -> None:
    with fresh_database("opsloop_migrations") as url:
        upgrade_database(url)
        assert TABLES <= tables(url)
        upgrade_database(url)  # re-runnable
        downgrade_database(url)
        assert not (TABLES & tables(url))
        upgrade_database(url)
        assert TABLES <= tables(url)
        engine = create_engine(sqlalchemy_url(url))
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        engine.dispose()
        assert diff == [], f"models and migrations differ: {diff}"
        with psycopg.connect(url) as conn:
            triggers = {r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal").fetchall()}
        assert {"logs_live", "task_events_live", "tasks_live_insert", "tasks_live_update"} <= triggers
