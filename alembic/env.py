"""Alembic environment: migrates the database opsloop is configured for, online only."""

from logging.config import fileConfig

import sqlalchemy as sa

from alembic import context
from opsloop.backend import models
from opsloop.backend.db import sqlalchemy_url

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging_config"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = models.metadata


def run_migrations_online() -> None:
    url = config.attributes.get("url") or sqlalchemy_url()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
