"""ffmpeg never outlives its step: killed on timeout, on interruption, and with its worker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import ffmpeg
import psutil
import pytest

from workers import supervise

pytestmark = pytest.mark.integration

MARKER_S = "37.123"  # an unusual sleep length that identifies our child processes


def _sleepers() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if (proc.info["cmdline"] or [])[:2] == ["sleep", MARKER_S]:
            found.append(proc)
    return found


def _wait_gone(timeout_s: float = 10.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while _sleepers() and time.monotonic() < deadline:
        time.sleep(0.05)
    return _sleepers()


def test_child_is_killed_when_its_timeout_expires() -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        supervise.run(["sleep", MARKER_S], timeout_s=0.3)
    assert _wait_gone() == []


def test_nonzero_exit_raises_ffmpeg_error_with_stderr() -> None:
    with pytest.raises(ffmpeg.Error) as info:
        supervise.run(["ffprobe", "-v", "error", "/nonexistent.mp4"], timeout_s=10)
    assert b"No such file" in info.value.stderr


def test_child_dies_when_the_worker_process_is_killed() -> None:
    # given a worker-like process running a supervised child
    code = f"from workers import supervise\nsupervise.run(['sleep', '{MARKER_S}'], timeout_s=60)\n"
    worker = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 10
    while not _sleepers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sleepers(), "the supervised child never started"
    # when the worker is killed outright (as by a hard time limit or the OOM killer)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    # then the kernel kills the child too
    assert _wait_gone() == []
