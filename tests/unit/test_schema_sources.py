"""d1.sql, the Alembic migrations and schema/tables.py describe the same SQLite schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from schema.db import make_engine
from schema.migrate import upgrade
from schema.tables import metadata_obj

D1_SQL = Path(__file__).parents[2] / "schema" / "d1.sql"


def describe(engine: sa.Engine) -> dict[str, Any]:
    inspector = sa.inspect(engine)
    schema = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        primary = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
        # SQLite lets a TEXT PRIMARY KEY hold NULL unless NOT NULL is written; SQLAlchemy
        # writes it, d1.sql (like the reference design) does not: the key is checked apart.
        columns = {
            c["name"]: (str(c["type"]), c["nullable"] or c["name"] in primary, c["default"])
            for c in inspector.get_columns(table)
        }
        indexes = {
            i["name"]: (tuple(i["column_names"]), bool(i["unique"]))
            for i in inspector.get_indexes(table)
        }
        schema[table] = (columns, indexes, primary)
    return schema


def test_d1_sql_migrations_and_tables_agree(tmp_path: Path) -> None:
    from_sql = make_engine(f"sqlite:///{tmp_path / 'd1.db'}")
    with from_sql.begin() as conn:
        conn.connection.driver_connection.executescript(D1_SQL.read_text())
    migrated = make_engine(f"sqlite:///{tmp_path / 'alembic.db'}")
    upgrade(migrated)
    declared = make_engine(f"sqlite:///{tmp_path / 'tables.db'}")
    metadata_obj.create_all(declared)
    described = [describe(e) for e in (from_sql, migrated, declared)]
    assert "rejected_events" in described[0]
    assert described[0] == described[1] == described[2]
    for engine in (from_sql, migrated, declared):
        engine.dispose()
