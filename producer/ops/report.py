"""Plain-text tables of task rows, for the CLI and the demo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schema.lifecycle import load_metadata

TASK_COLUMNS = ("key", "status", "duration", "display", "thumbs", "retries", "error")


def task_summary(row: Any) -> tuple[str, ...]:
    """One table line for a task row: the facts a person checks first."""
    meta = load_metadata(row.metadata)
    probe = meta.get("probe") or {}
    thumbs = (meta.get("thumbnails") or {}).get("keys") or []
    duration = f"{probe['duration_s']:.2f} s" if "duration_s" in probe else "-"
    display = (
        f"{probe['display_width']}x{probe['display_height']}" if "display_width" in probe else "-"
    )
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
