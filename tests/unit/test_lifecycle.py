"""Task status changes: legal ones happen and move updated_at, illegal ones are refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from schema.errors import IllegalTransition
from schema.lifecycle import transition
from schema.metadata import TaskMetadata, as_document
from schema.status import ALLOWED, TaskStatus
from schema.tables import tasks
from tests.unit.tasktable import one_task_row


@pytest.fixture
def conn() -> Iterator[sa.Connection]:
    with one_task_row() as connection:
        yield connection


def _row(conn: sa.Connection) -> sa.Row[tuple[object, ...]]:
    return conn.execute(sa.select(tasks).where(tasks.c.id == "t1")).one()


def test_new_rows_start_pending_with_no_retries(conn: sa.Connection) -> None:
    row = _row(conn)
    assert (row.status, row.retry_count) == ("pending", 0)


def test_legal_transition_moves_status_and_updated_at(conn: sa.Connection) -> None:
    transition(conn, "t1", TaskStatus.PROCESSING, step="validate-video")
    row = _row(conn)
    assert (row.status, row.step) == ("processing", "validate-video")
    assert row.updated_at > 1


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], TaskStatus.COMPLETED),
        ([TaskStatus.PROCESSING, TaskStatus.COMPLETED], TaskStatus.FAILED),
        ([TaskStatus.PROCESSING, TaskStatus.FAILED], TaskStatus.COMPLETED),
        ([TaskStatus.FAILED], TaskStatus.PROCESSING),
    ],
)
def test_illegal_transitions_are_refused(
    conn: sa.Connection, path: list[TaskStatus], illegal: TaskStatus
) -> None:
    for status in path:
        transition(conn, "t1", status)
    before = _row(conn)
    with pytest.raises(IllegalTransition, match=f"to {illegal}"):
        transition(conn, "t1", illegal)
    assert _row(conn).status == before.status


def test_unknown_task_cannot_change(conn: sa.Connection) -> None:
    with pytest.raises(IllegalTransition, match="t2"):
        transition(conn, "t2", TaskStatus.PROCESSING)


def test_metadata_patches_merge_nested_documents(conn: sa.Connection) -> None:
    first = TaskMetadata.model_validate({"timings_s": {"a": 1}, "x": 1})
    transition(conn, "t1", TaskStatus.PROCESSING, metadata_patch=first)
    transition(conn, "t1", TaskStatus.PROCESSING, metadata_patch=TaskMetadata(timings_s={"b": 2}))
    assert as_document(_row(conn).metadata) == {"timings_s": {"a": 1, "b": 2}, "x": 1}


def test_every_status_can_be_left_or_is_final_by_design() -> None:
    assert set(ALLOWED) == set(TaskStatus)
    assert TaskStatus.PENDING in ALLOWED[TaskStatus.FAILED]  # requeue
