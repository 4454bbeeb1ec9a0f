"""The D1 write-back's statements and the ``videofleet d1 sync --since`` times (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import pytest
from pydantic import ValidationError

from producer.cli.d1 import parse_since
from schema.d1 import ddl_statements, upsert
from schema.settings import Settings
from schema.tables import tasks, videos


def test_the_d1_ddl_is_schema_d1_sql_for_the_two_mirrored_tables_and_their_indexes() -> None:
    sql = [statement.sql for statement in ddl_statements()]
    assert sql[0].startswith("CREATE TABLE IF NOT EXISTS video_processing_tasks")
    assert "CREATE INDEX IF NOT EXISTS idx_tasks_status ON video_processing_tasks(status)" in sql
    assert (
        "CREATE INDEX IF NOT EXISTS idx_tasks_created ON video_processing_tasks(created_at)" in sql
    )
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS videos") for s in sql)
    assert not any("poller_watermarks" in s or "rejected_events" in s for s in sql)


def test_an_upsert_sends_strings_and_writes_none_as_a_literal_null() -> None:
    row = {c.name: None for c in videos.columns} | {
        "id": "v",
        "r2_key": "uploads/a.mp4",
        "size_bytes": 42,
        "status": "ready",
        "created_at": 1,
        "updated_at": 2,
    }
    statement = upsert(videos, row)
    assert statement.params == ("v", "uploads/a.mp4", "42", "ready", "1", "2")
    assert statement.sql.count("?") == len(statement.params)
    assert "VALUES (?, ?, NULL, NULL, ?, ?, NULL, ?, ?, NULL, NULL)" in statement.sql
    assert "WHERE excluded.updated_at > videos.updated_at" in statement.sql
    assert "ON CONFLICT(r2_key)" in statement.sql
    assert "ON CONFLICT(r2_key)" not in upsert(tasks, {c.name: "x" for c in tasks.columns}).sql


def test_since_takes_a_duration_or_an_iso_time() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert parse_since("6h", now=now) == int(
        datetime(2026, 12, 1, 6, 0, tzinfo=UTC).timestamp() * 1000
    )
    assert parse_since("2d", now=now) == int(
        datetime(2026, 11, 29, 12, tzinfo=UTC).timestamp() * 1000
    )
    eight = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert parse_since("2026-12-01T08:00Z") == int(eight.timestamp() * 1000)
    assert parse_since("2026-12-01T09:00+01:00") == int(eight.timestamp() * 1000)
    assert parse_since("2026-12-01") == int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
    with pytest.raises(click.BadParameter):
        parse_since("yesterday")


def test_the_d1_settings_go_together_and_empty_means_off() -> None:
    assert not Settings(d1_account_id="", d1_database_id="", d1_api_token="").d1_enabled
    assert Settings(d1_account_id="a", d1_database_id="d", d1_api_token="t").d1_enabled
    with pytest.raises(ValidationError, match="D1_API_TOKEN"):
        Settings(d1_account_id="a", d1_database_id="d")
