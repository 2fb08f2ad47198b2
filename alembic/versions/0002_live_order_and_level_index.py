"""live notifications in order; logs (level, id DESC) instead of (level, ts)

1. The live triggers split a statement's ids into NOTIFY payloads of 150; the chunks were sent
   in whatever order the aggregate produced them, and the ids inside a chunk unordered, so a
   500-line batch could reach stream clients out of order. Chunks are now built from the ids in
   order and sent one by one, in order.
2. `GET /logs?level=…` is newest first by id: the (level, id DESC) index serves it (and
   level+since, the ts condition being checked on the newest rows first) without sorting every
   matching row, which the (level, ts) index needed. Built and dropped CONCURRENTLY: ingest is
   never blocked.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


ORDERED_FUNCTIONS = """
CREATE OR REPLACE FUNCTION opsloop_notify_ids() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  payload text;
BEGIN
  FOR payload IN
    SELECT string_agg(id::text, ',' ORDER BY id)
    FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1) / 150 AS chunk FROM new_rows) s
    GROUP BY chunk ORDER BY chunk
  LOOP
    PERFORM pg_notify('opsloop_live', TG_ARGV[0] || payload);
  END LOOP;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION opsloop_notify_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  payload text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    FOR payload IN
      SELECT string_agg(id::text || ':' || version::text, ',' ORDER BY n)
      FROM (SELECT id, version, row_number() OVER () AS n FROM new_rows) s
      GROUP BY (n - 1) / 150 ORDER BY (n - 1) / 150
    LOOP
      PERFORM pg_notify('opsloop_live', 't:' || payload);
    END LOOP;
  ELSE
    FOR payload IN
      SELECT string_agg(id::text || ':' || version::text, ',' ORDER BY n)
      FROM (SELECT nr.id, nr.version, row_number() OVER () AS n
            FROM new_rows nr JOIN old_rows o USING (id) WHERE nr.version <> o.version) s
      GROUP BY (n - 1) / 150 ORDER BY (n - 1) / 150
    LOOP
      PERFORM pg_notify('opsloop_live', 't:' || payload);
    END LOOP;
  END IF;
  RETURN NULL;
END $$;
"""

ORIGINAL_FUNCTIONS = """
CREATE OR REPLACE FUNCTION opsloop_notify_ids() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('opsloop_live', TG_ARGV[0] || string_agg(id::text, ','))
  FROM (SELECT id, (row_number() OVER ()) / 150 AS chunk FROM new_rows) s GROUP BY chunk;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION opsloop_notify_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM pg_notify('opsloop_live', 't:' || string_agg(id::text || ':' || version::text, ','))
    FROM (SELECT id, version, (row_number() OVER ()) / 150 AS chunk FROM new_rows) s GROUP BY chunk;
  ELSE
    PERFORM pg_notify('opsloop_live', 't:' || string_agg(id::text || ':' || version::text, ','))
    FROM (SELECT n.id, n.version, (row_number() OVER ()) / 150 AS chunk
          FROM new_rows n JOIN old_rows o USING (id) WHERE n.version <> o.version) s GROUP BY chunk;
  END IF;
  RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(ORDERED_FUNCTIONS)
    with op.get_context().autocommit_block():
        op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS logs_level_idx ON logs (level, id DESC)")
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS logs_level_ts_idx")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS logs_level_ts_idx ON logs (level, ts)")
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS logs_level_idx")
    op.execute(ORIGINAL_FUNCTIONS)
