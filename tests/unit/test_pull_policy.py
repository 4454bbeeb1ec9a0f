"""The pull consumer's timing policy: per-message retry delays, API backoff, idle pauses."""

from __future__ import annotations

import pytest

from producer.transports.pullconsumer import Backoff, Pacing, retry_delay_s
from producer.transports.queues_api import QueueApiUnavailable


@pytest.mark.parametrize(
    ("attempts", "expected"), [(0, 30), (1, 30), (2, 60), (3, 120), (10, 15_360), (11, 30_720)]
)
def test_retry_delay_doubles_with_each_attempt(attempts: int, expected: int) -> None:
    assert retry_delay_s(attempts, base_s=30) == expected


def test_retry_delay_is_capped_at_twelve_hours_and_at_the_configured_maximum() -> None:
    assert retry_delay_s(12, base_s=30) == 43_200
    assert retry_delay_s(1_000_000, base_s=30) == 43_200
    assert retry_delay_s(5, base_s=30, max_s=300) == 300
    assert retry_delay_s(5, base_s=0) == 0


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(0.5, 3.0, jitter=False)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_backoff_with_full_jitter_stays_between_zero_and_the_delay() -> None:
    values = iter([0.0, 0.5, 1.0])
    backoff = Backoff(1.0, 8.0, jitter=True, rng=lambda: next(values))
    assert [backoff.next() for _ in range(3)] == [0.0, 1.0, 4.0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacing_waits_at_least_the_retry_after_and_never_beyond_its_cap() -> None:
    clock = FakeClock()
    pacing = Pacing(Backoff(1.0, 30.0, jitter=False), max_s=30.0, clock=clock)
    assert pacing.ready_in_s() == 0
    assert pacing.failed(QueueApiUnavailable("429", retry_after_s=7)) == 7
    assert pacing.ready_in_s() == 7
    assert pacing.failed(QueueApiUnavailable("500")) == 2  # the backoff went on growing
    assert pacing.ready_in_s() == 7  # an earlier Retry-After still holds
    assert pacing.failed(QueueApiUnavailable("429", retry_after_s=3600)) == 30
    clock.now += 30
    assert pacing.ready_in_s() == 0


def test_pacing_backoff_starts_again_after_a_success() -> None:
    clock = FakeClock()
    pacing = Pacing(Backoff(1.0, 30.0, jitter=False), max_s=30.0, clock=clock)
    assert [pacing.failed(QueueApiUnavailable("500")) for _ in range(7)] == [
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
    ]
    pacing.succeeded()
    assert pacing.failed(QueueApiUnavailable("500")) == 1.0
