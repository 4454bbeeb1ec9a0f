"""Plain-text tables of task rows, for the CLI and the demo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

TASK_COLUMNS = ("key", "status", "duration", "display", "thumbs", "retries", "error")


def task_summary(row: Any) -> tuple[str, ...]:
    """One table line for a task row: the facts a person checks first."""
    probe, thumbnails = row.metadata.probe, row.metadata.thumbnails
    thumbs = thumbnails.keys if thumbnails is not None else []
    duration = f"{probe.duration_s:.2f} s" if probe is not None else "-"
    display = "x".join(map(str, probe.display_size)) if probe is not None else "-"
    return (
        row.video_key,
        row.status,
        duration,
        display,
        str(len(thumbs)),
        str(row.retry_count or 0),
        row.error_message or "" if row.status == "failed" else "",
    )


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a rule under the header."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
