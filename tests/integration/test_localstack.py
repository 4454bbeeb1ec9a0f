"""Children the local stack starts never outlive the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration

PARENT = """
import sys, time
from contextlib import ExitStack
from pathlib import Path
from producer.dev import localstack
with ExitStack() as stack:
    child = localstack.spawn(stack, ["sleep", "300"], log=Path(sys.argv[1]))
    print(child.pid, flush=True)
    time.sleep(300)
"""


def test_a_spawned_child_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    # given a process that started a long-running child through the local stack
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "child.log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    with parent.stdout:
        child = psutil.Process(int(parent.stdout.readline()))
    # when the parent is SIGKILLed, so that no cleanup of its own runs
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    # then the child is gone too (it got SIGTERM from the kernel)
    deadline = time.monotonic() + 10
    while child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the child outlived its killed parent"
        time.sleep(0.05)
