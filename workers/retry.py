"""The retry policy, declared once: the base class of every step task.

It mirrors the reference design's per-step policy (limit 3, 30 s first delay, exponential) with
Celery's own machinery: ``autoretry_for`` the transient errors, exponential ``retry_backoff``
with full jitter, capped by ``retry_backoff_max``. All numbers come from the settings. Retries
are counted in the row and logged at INFO; a final failure is recorded and logged at ERROR, or
at WARNING in one line when it is about the file (a ``PermanentError``).

Bookkeeping never decides an outcome: a retry whose count cannot be written still happens (the
count is written when the retry starts), and a broker or database error met after the step's
work puts the message back in the queue instead of failing the task.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, ClassVar

from billiard.einfo import ExceptionInfo
from celery.exceptions import Reject, SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerError

from schema.errors import DatabaseUnavailable, PermanentError, TransientError
from schema.status import Step
from workers import mirror, notify, records
from workers.backoff import BackoffTask
from workers.context import get_deps, get_settings

logger = logging.getLogger(__name__)

# ffmpeg names its contexts by address ("[mov,mp4,m4a @ 0x55d0c8a4f2c0]"), Python reprs too
# ("<object at 0x7f...>"): a message that differs by them would make equal failures unequal.
_ADDRESS = re.compile(r"\s*@\s*0x[0-9a-fA-F]+|\s+at\s+0x[0-9a-fA-F]+")


class StepTask(BackoffTask):
    """A workflow step: retried on transient errors, recorded as failed on anything else."""

    step: ClassVar[Step]
    autoretry_for = (TransientError, SoftTimeLimitExceeded)
    # Failures about the file are expected: Celery logs them at INFO without a traceback.
    throws = (PermanentError,)
    acks_late = True
    reject_on_worker_lost = True

    @property
    def max_retries(self) -> int:  # type: ignore[override]
        return get_settings().retry_limit

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Write the retry count of a retried step if ``on_retry`` could not (database down)."""
        if self.request.retries:
            self._count_retries(str(args[0]), self.request.retries)

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        """Celery's retry, except that a retry the broker refused puts the message back.

        Celery rejects the message without requeueing when the retry cannot be published, which
        would lose the task while the broker restarts; the step runs again instead.
        """
        try:
            return super().retry(*args, **kwargs)
        except Reject as exc:
            # celery-types does not know Reject's attributes.
            if getattr(exc, "requeue", False):
                raise
            row_id = str((self.request.args or ["?"])[0])
            self._requeue(row_id, f"retry not published: {one_line(exc)}")
            raise

    def on_retry(
        self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: ExceptionInfo
    ) -> None:
        row_id = str(args[0])
        logger.info(
            "Task %s: %s will retry (%d so far): %s", row_id, self.step, self.request.retries, exc
        )
        self._count_retries(
            row_id,
            self.request.retries + 1,
            reason=f"retrying: {one_line(exc)}",
            error_class=exc.__class__.__name__,
        )

    def on_failure(
        self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: ExceptionInfo
    ) -> None:
        row_id = str(args[0])
        if isinstance(exc, BrokerError):
            # Celery could not hand the next step to the broker after this one returned: the
            # step's results are saved, and running it again (idempotent) hands off again.
            self._requeue(row_id, f"next step not published: {one_line(exc)}")
        message = failure_message(self.step, exc, retries=self.request.retries)
        try:
            failed = records.fail(
                get_deps().engine,
                row_id,
                step=self.step,
                message=message,
                error_class=exc.__class__.__name__,
            )
        except DatabaseUnavailable as db_exc:
            self._requeue(row_id, f"failure not recorded ({one_line(db_exc)}): {message}")
            return
        key = failed.video_key if failed is not None else "-"
        # About the file: one line at WARNING. Celery's own line is INFO without a traceback
        # (``throws``); a transient error that outlasted the retries stays an ERROR.
        level = logging.WARNING if isinstance(exc, PermanentError) else logging.ERROR
        logger.log(level, "Task %s (%s) failed: %s", row_id, key, message)
        if failed is not None:
            get_deps().changed(failed.video_key)
            notify.enqueue(self.app, row_id)
            mirror.enqueue(self.app, row_id)

    def _count_retries(self, row_id: str, retries: int, **why: Any) -> None:
        try:
            records.count_retries(
                get_deps().engine,
                row_id,
                step=self.step,
                message_id=str(self.request.id),
                retries=retries,
                **why,
            )
        except DatabaseUnavailable as exc:
            logger.warning(
                "Task %s: %s retry count not written now (%s); the retry writes it",
                row_id,
                self.step,
                exc,
            )

    def _requeue(self, row_id: str, why: str) -> None:
        """Put this step's message back in the queue (only possible from the pool process).

        A pause of ``RETRY_DELAY_S`` first, so that a dependency that stays down is not hammered.
        The parent process also calls ``on_failure`` (hard time limit); there it only logs.
        """
        logger.warning("Task %s: %s requeued: %s", row_id, self.step, why)
        if self.request.id is None:
            return
        time.sleep(get_settings().retry_delay_s)
        raise Reject(why, requeue=True)


def failure_message(step: Step, exc: BaseException, *, retries: int) -> str:
    """One line a person can act on: which step, why, and whether retries were spent."""
    if isinstance(exc, PermanentError):
        return f"{step}: {one_line(exc)}"
    if isinstance(exc, (TransientError, SoftTimeLimitExceeded)):
        reason = "time limit exceeded" if isinstance(exc, SoftTimeLimitExceeded) else one_line(exc)
        return f"{step}: gave up after {retries} retries: {reason}"
    return f"{step}: internal error: {exc.__class__.__name__}: {one_line(exc)}"


def one_line(exc: BaseException, limit: int = 400) -> str:
    """The exception's message folded onto one line, without memory addresses, and shortened."""
    text = " ".join(_ADDRESS.sub("", str(exc)).split()) or exc.__class__.__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
