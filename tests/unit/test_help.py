"""Every command-line entry point answers ``--help`` with its usage, and does nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from producer.cli import main

ROOT = Path(__file__).resolve().parents[2]
# Long enough to start Python and import a bench, far too short to run one.
HELP_TIMEOUT_S = 60
MODULES = [
    "bench",
    "bench.media",
    "bench.thumbs",
    "bench.memory",
    "bench.fleet",
    "bench.storyboard",
    "bench.ingest",
    "bench.fileserver",
    "producer",
    "producer.ops.flower_login",
]


def _help_of(*args: str) -> str:
    """The usage ``python *args --help`` prints; a command that starts working instead fails.

    It runs in its own session so that, on timeout, its children die with it (``python -m
    bench`` starts one process per bench).
    """
    proc = subprocess.Popen(
        [sys.executable, *args, "--help"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=HELP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"python {' '.join(args)} --help ran for {HELP_TIMEOUT_S} s instead of helping")
    assert proc.returncode == 0, err
    return out


@pytest.mark.parametrize("module", MODULES)
def test_python_dash_m_entry_points_print_usage_and_exit(module: str) -> None:
    assert "usage:" in _help_of("-m", module).lower()


def test_the_metrics_scrape_script_prints_usage_and_exits() -> None:
    assert "usage:" in _help_of("bench/metrics_scrape.py").lower()


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += _command_paths(command, (*prefix, name))
    return paths


@pytest.mark.parametrize("path", _command_paths(main), ids=" ".join)
def test_every_videofleet_subcommand_prints_usage(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: main {' '.join(path)}" in result.output
