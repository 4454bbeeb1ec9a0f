"""Publishing the workflow chain by task name; the producer never imports worker code."""

from __future__ import annotations

from typing import Any

from celery import Celery, chain
from kombu.exceptions import OperationalError

from schema.errors import BrokerUnavailable
from schema.message import QUEUE, TASK_NAMES
from schema.settings import Settings
from schema.status import STEPS, Step

PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 2,
}


class ChainPublisher:
    """Sends ``validate -> thumbnails -> update`` for a task row to the ``video-events`` queue."""

    def __init__(self, settings: Settings) -> None:
        transport = {"visibility_timeout": settings.visibility_timeout_s}
        self._app = Celery("videofleet-producer", set_as_current=False)
        self._app.conf.update(
            broker_url=settings.broker_url,
            broker_transport_options=transport,
            task_serializer="json",
            task_send_sent_event=True,
        )

    def publish(self, task_id: str, *, workflow_id: str, start: Step = Step.VALIDATE) -> None:
        """Publish the chain from ``start`` on; its first message's id is ``workflow_id``.

        The first step's Celery id equals ``workflow_id``, so it is also the chain's ``root_id``:
        the task row's ``workflow_id`` finds every step of the chain in Flower.

        Raises:
            BrokerUnavailable: the broker refused or could not be reached.
        """
        remaining = STEPS[STEPS.index(start) :]
        signatures = [
            self._app.signature(TASK_NAMES[step], args=(task_id,), immutable=True, queue=QUEUE)
            for step in remaining
        ]
        signatures[0].set(task_id=workflow_id)
        try:
            chain(*signatures).apply_async(retry=True, retry_policy=PUBLISH_RETRY_POLICY)
        except (OperationalError, OSError) as exc:
            raise BrokerUnavailable(f"broker unavailable: {exc}") from exc

    def ping(self) -> None:
        """Check the broker connection (readiness)."""
        try:
            with self._app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1)
        except (OperationalError, OSError) as exc:
            raise BrokerUnavailable(f"broker unavailable: {exc}") from exc

    def close(self) -> None:
        """Release the broker connection pool."""
        self._app.close()

    def __enter__(self) -> ChainPublisher:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
