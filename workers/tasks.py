"""The Celery tasks: thin wrappers that run a step and leave retries to ``StepTask``."""

from __future__ import annotations

from celery.exceptions import Ignore

from schema.message import TASK_NAMES
from schema.status import Step
from workers import mirror, notify, steps
from workers.app import app
from workers.context import get_deps
from workers.retry import StepTask


def _run(step_fn: steps.StepFn, task_id: str) -> None:
    # A step that finds its task already completed stops the chain here (a redelivery).
    if not step_fn(get_deps(), task_id):
        raise Ignore()


@app.task(bind=True, base=StepTask, name=TASK_NAMES[Step.VALIDATE], step=Step.VALIDATE)
def validate_video(self: StepTask, task_id: str) -> None:
    """validate-video: probe the object in-process over bounded range reads."""
    _run(steps.validate, task_id)


@app.task(bind=True, base=StepTask, name=TASK_NAMES[Step.THUMBNAILS], step=Step.THUMBNAILS)
def generate_thumbnails(self: StepTask, task_id: str) -> None:
    """generate-thumbnails: seek to evenly spaced times and store JPEGs."""
    _run(steps.thumbnails, task_id)


@app.task(bind=True, base=StepTask, name=TASK_NAMES[Step.UPDATE], step=Step.UPDATE)
def update_database(self: StepTask, task_id: str) -> None:
    """update-database: mark the task completed and the video ready, then notify if configured."""
    _run(steps.update, task_id)
    notify.enqueue(self.app, task_id)
    mirror.enqueue(self.app, task_id)
