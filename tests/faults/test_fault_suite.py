"""The CI subset of the fault suite: one Redis restart without persistence, one PostgreSQL stop,
30% 503s from storage and one worker main-process kill, 20 videos each, on private services.

The full suite is ``make faults`` (``python -m tests.faults``), 200 videos a fault.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.fleet import Services, services
from tests.faults.suite import FAULTS, make_clips, run_fault, table

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

VIDEOS = 20
DRAIN_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    with services(tmp_path_factory.mktemp("faults")) as running:
        yield running


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_clips(tmp_path_factory.mktemp("clips"))


@pytest.mark.parametrize(
    "name",
    [
        "redis restart, no persistence",
        "postgresql stopped 10 s",
        "s3 503 to 30% of requests",
        "worker main process SIGKILL",
    ],
)
def test_fault_loses_strands_fails_and_duplicates_nothing(
    found: Services, clips: list[Path], name: str
) -> None:
    # given a private fleet of 2 workers and the recovery loop, 20 uploads
    # when the fault strikes once a quarter of them ended
    report = run_fault(found, FAULTS[name], clips, videos=VIDEOS, drain_timeout_s=DRAIN_TIMEOUT_S)
    # then every upload completes once, and retry_count counts the retries that ran
    assert report.clean, table([report])
