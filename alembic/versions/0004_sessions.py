"""dashboard sessions and the app's generated secrets

`sessions` gives each dashboard login a server-side identity (the cookie carries a random id; the
table stores its hash) that logout and expiry revoke. `app_secrets` keeps the session signing key
generated when SESSION_SECRET is unset, so every instance shares it and none derives it from
INTERNAL_KEY.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("sessions_expires_idx", "sessions", ["expires_at"])
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )


def downgrade() -> None:
    op.drop_table("app_secrets")
    op.drop_index("sessions_expires_idx", table_name="sessions")
    op.drop_table("sessions")
