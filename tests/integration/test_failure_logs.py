"""A failure about the file is one WARNING line naming the task, the key and the reason.

Not an ERROR with a traceback: nothing is wrong with the fleet. And the stored reason carries
no memory address (ffmpeg's ``[mov,mp4 @ 0x55...]``), so equal failures read equal.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from producer.dev import samples
from tests.fleet import Fleet

pytestmark = pytest.mark.integration

_LEVEL = re.compile(r": (DEBUG|INFO|WARNING|ERROR|CRITICAL)/")


@pytest.fixture(scope="module")
def truncated_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first half of an MP4 whose index is at the end: ffmpeg finds no moov atom."""
    whole = tmp_path_factory.mktemp("truncated") / "whole.mp4"
    source = ["-f", "lavfi", "-i", "testsrc=d=2:s=160x120:r=25"]
    encode = ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(whole)]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *source, *encode], check=True, timeout=60)
    half = whole.with_name("half.mp4")
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return half


def _level(line: str) -> str:
    found = _LEVEL.search(line)
    return found.group(1) if found else ""


def test_permanent_failures_log_one_warning_line_each_without_a_traceback(
    fleet: Fleet, not_a_video: Path, truncated_mp4: Path, tmp_path: Path
) -> None:
    empty = samples.make_empty(tmp_path / "empty.mp4")
    uploads = {
        "uploads/log-notes.mp4": not_a_video,
        "uploads/log-empty.mp4": empty,
        "uploads/log-half-1.mp4": truncated_mp4,
        "uploads/log-half-2.mp4": truncated_mp4,
    }
    log_start = fleet.worker_log.stat().st_size
    # given files that are not videos
    outcomes = fleet.deliver(*(fleet.upload(path, key) for key, path in uploads.items()))
    # when the fleet fails them
    rows = {o.key: fleet.wait(o.task_id) for o in outcomes}
    assert {row.status for row in rows.values()} == {"failed"}
    # then each failure is one WARNING line with the task, the key and the reason
    deadline = time.monotonic() + 10
    while True:
        log = fleet.worker_log.read_bytes()[log_start:].decode()
        lines = {
            key: [line for line in log.splitlines() if row.id in line or key in line]
            for key, row in rows.items()
        }
        loud = {
            key: [line for line in found if _level(line) not in ("DEBUG", "INFO")]
            for key, found in lines.items()
        }
        if all(loud.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for key, row in rows.items():
        [line] = loud[key]
        assert ": WARNING/" in line
        assert f"Task {row.id} ({key}) failed: validate-video: " in line
        assert row.error_message in line
    # and no traceback was logged for any of them
    assert "Traceback" not in log
    # and equal failures read equal: no memory address in the stored reason
    half_1, half_2 = rows["uploads/log-half-1.mp4"], rows["uploads/log-half-2.mp4"]
    assert "moov atom not found" in half_1.error_message
    assert "0x" not in half_1.error_message
    assert half_1.error_message.replace("half-1", "half-N") == half_2.error_message.replace(
        "half-2", "half-N"
    )
    assert rows["uploads/log-empty.mp4"].error_message == (
        "validate-video: the object is empty (0 bytes)"
    )
