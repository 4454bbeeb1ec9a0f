"""The task table the CLI and the demo print."""

from __future__ import annotations

import json
from types import SimpleNamespace

from producer.ops.report import TASK_COLUMNS, format_table, task_summary
from schema.metadata import decode


def test_completed_row_shows_probe_facts_and_thumbnail_count() -> None:
    meta = {
        "probe": {
            "duration_s": 4.0,
            "width": 320,
            "height": 240,
            "display_width": 240,
            "display_height": 320,
        },
        "thumbnails": {"keys": ["a", "b"]},
    }
    row = SimpleNamespace(
        video_key="uploads/a.mp4",
        status="completed",
        metadata=decode(json.dumps(meta)),
        retry_count=1,
        error_message="retrying: old news",
    )
    assert task_summary(row) == ("uploads/a.mp4", "completed", "4.00 s", "240x320", "2", "1", "")


def test_failed_row_shows_its_error_and_dashes_for_unknowns() -> None:
    row = SimpleNamespace(
        video_key="k",
        status="failed",
        metadata=decode(None),
        retry_count=None,
        error_message="validate-video: the object is empty (0 bytes)",
    )
    assert task_summary(row) == (
        "k",
        "failed",
        "-",
        "-",
        "0",
        "0",
        "validate-video: the object is empty (0 bytes)",
    )


def test_table_aligns_columns_without_trailing_spaces() -> None:
    text = format_table(TASK_COLUMNS[:2], [("uploads/long-name.mp4", "completed"), ("k", "")])
    assert text.splitlines() == [
        "key                    status",
        "---------------------  ---------",
        "uploads/long-name.mp4  completed",
        "k",
    ]
