"""Run ffmpeg/ffprobe as child processes that never outlive the step that started them.

ffmpeg-python's own ``run``/``probe`` wait without a timeout and leave the child running when
the waiting thread is interrupted (a Celery soft time limit raises inside it). Here the child is
killed on any exception, and on Linux it also gets SIGKILL from the kernel if the worker process
itself dies (hard time limit, OOM, SIGKILL), so no ffmpeg is ever left behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import signal
import subprocess
import sys

import ffmpeg

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_LIBC = (
    ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if sys.platform == "linux"
    else None
)


def _die_with_parent() -> None:
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def run(args: list[str], *, timeout_s: float) -> bytes:
    """Run ``args`` and return its stdout.

    Raises:
        ffmpeg.Error: the program exited non-zero (``stderr`` holds its output).
        subprocess.TimeoutExpired: it ran longer than ``timeout_s`` (it has been killed).
    """
    # The context manager closes the pipes however this ends (no leaked descriptors).
    with subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_die_with_parent,  # safe: a prefork child runs one task on one thread
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except BaseException:
            # Soft time limit, timeout, shutdown: the child must not outlive the step.
            proc.kill()
            proc.communicate()
            raise
    if proc.returncode != 0:
        raise ffmpeg.Error(args[0], out, err)
    return bytes(out)
