"""Follow-up tasks sent after a task row ends (completion webhook, D1 mirror).

They ride the fleet's queue as Celery tasks of their own, so a slow or absent receiver never
holds up a video step and a delivery survives worker restarts like any other message. Each is
retried with the fleet's backoff until a deadline it carries (``FollowupTask``).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from billiard.einfo import ExceptionInfo
from celery import Celery
from kombu.exceptions import OperationalError

from schema.message import QUEUE
from workers.backoff import BackoffTask

logger = logging.getLogger(__name__)


def send(celery_app: Celery, name: str, args: tuple[Any, ...], *, row_id: str, what: str) -> None:
    """Send follow-up task ``name``; never raises for the broker.

    The task row itself has ended and stays recorded either way: a lost follow-up is logged at
    ERROR (the D1 mirror catches up with ``videofleet d1 sync``).
    """
    try:
        celery_app.send_task(name, args=args, queue=QUEUE)
    except (OperationalError, OSError) as exc:
        logger.error("Task %s: %s not enqueued: %s", row_id, what, exc)


class FollowupTask(BackoffTask):
    """Base of the follow-ups: retried with the fleet's backoff until their deadline.

    A subclass names what it delivers (``what``, ``failed_as``) and which rows a call serves
    (``rows``), so the retry and failure lines name the task rows, as the steps' lines do.
    """

    max_retries = None  # the deadline ends the retries, not a count
    what: ClassVar[str] = "follow-up"
    failed_as: ClassVar[str] = "failed"

    @staticmethod
    def rows(args: Any) -> str:
        """The task row ids a call with positional ``args`` serves, for log lines."""
        return "?"

    def on_retry(
        self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: ExceptionInfo
    ) -> None:
        logger.info(
            "Task %s: %s will retry (%d so far): %s",
            self.rows(args),
            self.what,
            self.request.retries,
            exc,
        )

    def on_failure(
        self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: ExceptionInfo
    ) -> None:
        logger.error("Task %s: %s %s: %s", self.rows(args), self.what, self.failed_as, exc)
