"""The fleet's backoff, read from the settings: the base of every retrying task.

Celery's ``autoretry_for`` reads these attributes when a task is bound, after the app is
configured, so properties let the numbers come from the process's settings.
"""

from __future__ import annotations

from celery import Task

from workers.context import get_settings


class BackoffTask(Task):  # type: ignore[type-arg]
    """Exponential backoff with jitter: ``RETRY_DELAY_S``, doubled up to ``RETRY_BACKOFF_MAX_S``."""

    @property
    def retry_backoff(self) -> int:
        """First retry delay in seconds; Celery doubles it each retry."""
        return max(1, round(get_settings().retry_delay_s))

    @property
    def retry_backoff_max(self) -> int:
        return get_settings().retry_backoff_max_s

    @property
    def retry_jitter(self) -> bool:
        return get_settings().retry_jitter
