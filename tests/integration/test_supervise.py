"""ffmpeg children never outlive the step that started them (validation runs ffprobe so)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from workers import supervise

# Plays a test pattern in real time for a minute: long enough to be caught running.
SLOW_FFMPEG = [
    "ffmpeg", "-nostdin", "-loglevel", "error", "-re",
    "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=5:duration=60", "-f", "null", "-",
]  # fmt: skip


def _ffmpeg_children(proc: psutil.Process) -> list[psutil.Process]:
    return [p for p in proc.children(recursive=True) if p.name() == "ffmpeg"]


def test_ffmpeg_is_killed_when_it_runs_past_its_timeout() -> None:
    me = psutil.Process()
    with pytest.raises(subprocess.TimeoutExpired):
        supervise.run(SLOW_FFMPEG, timeout_s=0.5)
    assert _ffmpeg_children(me) == []


def test_ffmpeg_dies_when_the_process_running_it_is_killed() -> None:
    # given a process running ffmpeg through the supervisor
    code = f"from workers import supervise; supervise.run({SLOW_FFMPEG!r}, timeout_s=120)"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 30
        ffmpeg: list[psutil.Process] = []
        while not ffmpeg:
            assert time.monotonic() < deadline, "ffmpeg never started"
            ffmpeg = _ffmpeg_children(psutil.Process(parent.pid))
            time.sleep(0.05)
        # when that process is killed with SIGKILL (no Python cleanup runs)
        parent.kill()
        parent.wait()
        # then the kernel kills its ffmpeg too
        gone, alive = psutil.wait_procs(ffmpeg, timeout=10)
        assert alive == []
        assert gone
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
