"""Alembic environment: runs on the connection ``schema.migrate`` hands over, or on DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from schema.db import make_engine
from schema.settings import Settings
from schema.tables import metadata_obj


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata_obj,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the given connection, or the database named by the settings."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(Settings().database_url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
