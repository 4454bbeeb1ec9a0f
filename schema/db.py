"""Engine factory, the one place that knows how SQLite and PostgreSQL differ at connect time, and
the one translation of a lost database into the error tree."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IllegalStateChangeError, InterfaceError, OperationalError

from schema.errors import DatabaseUnavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL and a busy timeout for concurrent writers."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


@contextmanager
def transient_db_errors() -> Iterator[None]:
    """Turn a lost or refused database connection into ``DatabaseUnavailable`` (retryable).

    Only connection-level failures are translated: an integrity or programming error is a bug or
    a fact about the data, and passes through unchanged.

    Raises:
        DatabaseUnavailable: the database could not be reached or dropped the connection.
    """
    try:
        yield
    except (OperationalError, InterfaceError, IllegalStateChangeError) as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the producer write while worker processes read; the busy timeout makes
    # concurrent writers wait for the lock instead of failing with "database is locked".
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def insert_ignoring_conflicts(
    conn: Connection,
    table: sa.Table,
    rows: dict[str, Any] | list[dict[str, Any]],
    *,
    conflict_columns: tuple[str, ...],
) -> int:
    """``INSERT ... ON CONFLICT DO NOTHING`` on SQLite or PostgreSQL; return how many rows went in.

    The database decides the race, so concurrent inserts of the same key leave exactly one row.
    """
    dialect = conn.dialect.name
    index = list(conflict_columns)
    if dialect == "postgresql":
        stmt: sa.Executable = postgresql.insert(table).on_conflict_do_nothing(index_elements=index)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=index)
    else:
        raise NotImplementedError(f"unsupported database dialect {dialect!r}")
    result = conn.execute(stmt, rows)
    return max(result.rowcount, 0)
