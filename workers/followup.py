"""Follow-up tasks sent after a task row ends (completion webhook, D1 mirror).

They ride the fleet's queue as Celery tasks of their own, so a slow or absent receiver never
holds up a video step and a delivery survives worker restarts like any other message.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from schema.message import QUEUE

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
