"""The fleet's worker app, with a validate step that dies like a crashing decoder on poison keys.

``celery -A tests.faults.poison_worker worker`` runs the real app and tasks; only for video keys
under ``poison/`` the step's process kills itself with SIGSEGV before doing anything, every
time, and appends a line to ``POISON_CRASH_LOG`` first so the test can count the crashes.
"""

from __future__ import annotations

import os
import signal

import sqlalchemy as sa

from schema.tables import tasks
from workers import app, steps
from workers.context import Deps

POISON_PREFIX = "poison/"
_validate = steps.validate


def _crashing_validate(deps: Deps, task_id: str) -> bool:
    with deps.engine.connect() as conn:
        key = conn.execute(sa.select(tasks.c.video_key).where(tasks.c.id == task_id)).scalar()
    if key is not None and key.startswith(POISON_PREFIX):
        with open(os.environ["POISON_CRASH_LOG"], "a") as log:
            log.write(f"{task_id} {os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGSEGV)
    return _validate(deps, task_id)


steps.validate = _crashing_validate

__all__ = ["app"]
