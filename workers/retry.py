"""The retry policy, declared once: the base class of every step task.

It mirrors the reference design's per-step policy (limit 3, 30 s first delay, exponential) with
Celery's own machinery: ``autoretry_for`` the transient errors, exponential ``retry_backoff``
with full jitter, capped by ``retry_backoff_max``. All numbers come from the settings. Retries
are counted in the row and logged at INFO; the final failure is recorded and logged at ERROR.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from billiard.einfo import ExceptionInfo
from celery.exceptions import SoftTimeLimitExceeded

from schema.errors import PermanentError, TransientError
from schema.status import Step
from workers import mirror, notify, records
from workers.backoff import BackoffTask
from workers.context import get_deps, get_settings

logger = logging.getLogger(__name__)


class StepTask(BackoffTask):
    """A workflow step: retried on transient errors, recorded as failed on anything else."""

    step: ClassVar[Step]
    autoretry_for = (TransientError, SoftTimeLimitExceeded)
    acks_late = True
    reject_on_worker_lost = True

    @property
    def max_retries(self) -> int:  # type: ignore[override]
        return get_settings().retry_limit

    def on_retry(
        self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: ExceptionInfo
    ) -> None:
        row_id = str(args[0])
        logger.info(
            "Task %s: %s will retry (%d so far): %s", row_id, self.step, self.request.retries, exc
        )
        records.count_retry(
            get_deps().engine,
            row_id,
            step=self.step,
            reason=f"retrying: {one_line(exc)}",
            error_class=exc.__class__.__name__,
        )

    def on_failure(
        self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: ExceptionInfo
    ) -> None:
        row_id = str(args[0])
        message = failure_message(self.step, exc, retries=self.request.retries)
        logger.error("Task %s: %s", row_id, message)
        error_class = exc.__class__.__name__
        failed = records.fail(
            get_deps().engine, row_id, step=self.step, message=message, error_class=error_class
        )
        if failed:
            notify.enqueue(self.app, row_id)
            mirror.enqueue(self.app, row_id)


def failure_message(step: Step, exc: BaseException, *, retries: int) -> str:
    """One line a person can act on: which step, why, and whether retries were spent."""
    if isinstance(exc, PermanentError):
        return f"{step}: {one_line(exc)}"
    if isinstance(exc, (TransientError, SoftTimeLimitExceeded)):
        reason = "time limit exceeded" if isinstance(exc, SoftTimeLimitExceeded) else one_line(exc)
        return f"{step}: gave up after {retries} retries: {reason}"
    return f"{step}: internal error: {exc.__class__.__name__}: {one_line(exc)}"


def one_line(exc: BaseException, limit: int = 400) -> str:
    """The exception's message folded onto one line and shortened."""
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
