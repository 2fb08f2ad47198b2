"""statistics for the whole-pattern check of `GET /logs?q=`

`q` with several words looks up one word in the trigram index and checks the whole pattern on
`message || ''`, an expression the index cannot serve (see `index_word` in
opsloop/backend/logs/repository.py). With statistics on that expression the planner estimates
the check as well as it estimates a plain `message ILIKE`, so a common phrase still walks the
primary key (1 ms) instead of fetching every row that holds its first word (about 1 s on a
million rows).

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE STATISTICS IF NOT EXISTS logs_message_check ON (message || '') FROM logs")
    op.execute("ANALYZE logs")


def downgrade() -> None:
    op.execute("DROP STATISTICS IF EXISTS logs_message_check")
