"""The clients every ingesting process holds, wired in one place from its settings.

The ``ingest`` command, the pull consumer, the poller and the web app all need the same four:
the task database, the chain publisher, the event rules and the bucket's client. Opening them
here means a new client or a new rule setting is wired once, and every process closes them the
same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from producer.events.intake import Intake
from producer.events.publish import ChainPublisher
from producer.events.rejections import RejectionLog
from producer.events.rules import EventRules
from schema.db import make_engine
from schema.settings import Settings
from schema.storage import make_s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True, slots=True)
class Services:
    """A process's ingest clients; open them with ``open_services``."""

    settings: Settings
    engine: Engine
    publisher: ChainPublisher
    rules: EventRules
    s3: S3Client

    def intake(self, *, source: str, rejections: RejectionLog | None = None) -> Intake:
        """An ``Intake`` for the transport ``source``.

        Args:
            source: the transport's name, recorded with each rejection.
            rejections: a log to reuse, so its counts span the process; a fresh one otherwise.
        """
        return Intake(
            self.engine,
            self.publisher,
            rejections or RejectionLog(self.engine),
            source=source,
            rules=self.rules,
            storage=self.s3,
        )


@contextmanager
def open_services(settings: Settings) -> Iterator[Services]:
    """Open the clients for ``settings``; the broker pool and the engine close on exit."""
    engine = make_engine(settings.database_url)
    try:
        with ChainPublisher(settings) as publisher:
            yield Services(
                settings=settings,
                engine=engine,
                publisher=publisher,
                rules=EventRules.from_settings(settings),
                s3=make_s3_client(settings),
            )
    finally:
        engine.dispose()
