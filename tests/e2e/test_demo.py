"""`videofleet demo` end to end: its own local S3 endpoint, a real worker, real samples."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

DEMO_TIMEOUT_S = 240
# The demo's broker gets a Redis database of its own, apart from the integration fleets.
DEMO_REDIS_DB = int(os.environ.get("TEST_REDIS_E2E_DB", "1"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_processes_every_sample_and_prints_the_rows(tmp_path: Path) -> None:
    # given the embedded defaults, moved to a free S3 port, a fresh SQLite file and Redis database
    env = {
        **os.environ,
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "DATABASE_URL": f"sqlite:///{tmp_path}/demo.db",
        "BROKER_URL": f"redis://127.0.0.1:6379/{DEMO_REDIS_DB}",
    }
    # when the demo runs (in a process group of its own: if it hangs, none of its worker, moto
    # or pool processes outlives the test to take the next run's tasks)
    proc = subprocess.Popen(
        [sys.executable, "-m", "producer", "demo", "--workdir", str(tmp_path / "demo")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=DEMO_TIMEOUT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    # then it exits 0 and its table shows the expected ends
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {
        line.split()[0].rsplit("/", 1)[-1]: line
        for line in result.stdout.splitlines()
        if "uploads/" in line
    }
    assert "6/6 tasks ended as expected" in result.stdout
    for name in ("clip.mp4", "portrait.mp4", "anamorphic.mkv", "clip.webm"):
        assert " completed " in lines[name]
    assert "240x320" in lines["portrait.mp4"]
    assert "failed" in lines["empty.mp4"]
    assert "empty (0 bytes)" in lines["empty.mp4"]
    assert "not a video: the content is no container" in lines["shopping-list.mp4"]
