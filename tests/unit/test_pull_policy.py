"""The pull consumer's timing policy: per-message retry delays, API backoff, idle pauses."""

from __future__ import annotations

import pytest

from producer.pullconsumer import Backoff, retry_delay_s


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
