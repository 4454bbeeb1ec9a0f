"""The schema is one schema: d1.sql as D1 runs it equals Alembic on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from schema.db import make_engine
from schema.status import TaskStatus
from schema.tables import metadata_obj
from tests.integration.conftest import reset_database

pytestmark = pytest.mark.integration

D1_SQL = files("schema").joinpath("d1.sql").read_text()
DOCUMENTED_TASK_COLUMNS = [
    ("id", "TEXT", False),
    ("video_key", "TEXT", False),
    ("status", "TEXT", False),
    ("workflow_id", "TEXT", True),
    ("created_at", "INTEGER", False),
    ("updated_at", "INTEGER", False),
    ("metadata", "TEXT", True),
    ("error_message", "TEXT", True),
    ("retry_count", "INTEGER", True),
]

# SQLite's INTEGER is 64-bit; PostgreSQL needs BIGINT for the same range (epoch milliseconds).
_TYPE_NAMES = {"BIGINT": "INTEGER", "INTEGER": "INTEGER", "TEXT": "TEXT"}


def _default(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.split("::")[0].strip("()")  # PostgreSQL renders 'pending'::text
    return text.strip("'")


def describe(engine: sa.Engine) -> dict[str, Any]:
    """Tables, columns (name, type, nullable, default) and indexes, normalised across dialects."""
    inspector = sa.inspect(engine)
    tables: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        columns = [
            (
                c["name"],
                _TYPE_NAMES.get(str(c["type"]).upper(), str(c["type"]).upper()),
                bool(c["nullable"]) and not _is_pk(inspector, table, c["name"]),
                _default(c.get("default")),
            )
            for c in inspector.get_columns(table)
        ]
        indexes = sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in inspector.get_indexes(table)
        )
        tables[table] = {"columns": columns, "indexes": indexes}
    return tables


def _is_pk(inspector: Any, table: str, column: str) -> bool:
    return column in inspector.get_pk_constraint(table)["constrained_columns"]


@pytest.fixture
def d1_schema(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "d1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(D1_SQL)
    engine = make_engine(f"sqlite:///{path}")
    try:
        return describe(engine)
    finally:
        engine.dispose()


def test_d1_sql_keeps_the_documented_task_columns(d1_schema: dict[str, Any]) -> None:
    columns = d1_schema["video_processing_tasks"]["columns"]
    assert [c[:3] for c in columns[: len(DOCUMENTED_TASK_COLUMNS)]] == DOCUMENTED_TASK_COLUMNS
    defaults = {c[0]: c[3] for c in columns}
    assert defaults["status"] == TaskStatus.PENDING.value
    assert defaults["retry_count"] == "0"
    indexes = {i[0]: i[1] for i in d1_schema["video_processing_tasks"]["indexes"]}
    assert indexes["idx_tasks_status"] == ("status",)
    assert indexes["idx_tasks_created"] == ("created_at",)


def test_alembic_on_sqlite_builds_the_d1_schema(d1_schema: dict[str, Any], tmp_path: Path) -> None:
    engine = reset_database(f"sqlite:///{tmp_path}/alembic.db")
    try:
        assert describe(engine) == d1_schema
    finally:
        engine.dispose()


def test_alembic_on_postgresql_builds_the_d1_schema(
    d1_schema: dict[str, Any], postgres_url: str
) -> None:
    engine = reset_database(postgres_url)
    try:
        assert describe(engine) == d1_schema
        with engine.connect() as conn:
            kinds = dict(
                conn.execute(
                    sa.text(
                        "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_name = 'video_processing_tasks'"
                    )
                ).all()
            )
        assert kinds["created_at"] == "bigint"  # epoch milliseconds do not fit a 32-bit INTEGER
    finally:
        engine.dispose()


def test_tables_module_describes_the_d1_schema(d1_schema: dict[str, Any], tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/tables.db")
    try:
        metadata_obj.create_all(engine)
        assert describe(engine) == d1_schema
    finally:
        engine.dispose()
