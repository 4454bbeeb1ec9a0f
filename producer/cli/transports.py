"""CLI commands of the transports: ``videofleet pull`` and ``videofleet rejected``."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import click

from producer.events.intake import Intake
from producer.events.publish import ChainPublisher
from producer.events.rejections import RejectionLog, newest_rejections
from producer.events.rules import EventRules
from producer.ops.report import format_table
from producer.transports.pullconsumer import SOURCE, PullConsumer, run_together
from producer.transports.queues_api import QueueApiRefused, QueuesApi
from schema.db import make_engine
from schema.settings import Settings
from schema.storage import make_s3_client

logger = logging.getLogger(__name__)

REJECTED_COLUMNS = ("received", "source", "message id", "reason", "body")


@click.command("pull")
@click.pass_obj
def pull(settings: Settings) -> None:
    """Consume the Cloudflare Queue over the HTTP pull API until SIGTERM/SIGINT."""
    missing = [
        name
        for name, value in (
            ("CF_ACCOUNT_ID", settings.cf_account_id),
            ("CF_QUEUE_ID", settings.cf_queue_id),
            ("CF_API_TOKEN", settings.cf_api_token.get_secret_value()),
        )
        if not value
    ]
    if missing:
        raise click.ClickException(f"set {', '.join(missing)} to pull from a Cloudflare Queue")
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        logger.info("Pull consumer: %s received, finishing the batch in hand", name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    engine = make_engine(settings.database_url)
    api = QueuesApi(settings)
    try:
        with ChainPublisher(settings) as publisher:
            intake = Intake(
                engine,
                publisher,
                RejectionLog(engine),
                source=SOURCE,
                rules=EventRules.from_settings(settings),
                storage=make_s3_client(settings),
            )
            consumers = [
                PullConsumer(settings, api, intake, stop=stop)
                for _ in range(settings.pull_concurrency)
            ]
            logger.info(
                "Pull consumer: pulling queue %s, %d batch(es) in flight",
                settings.cf_queue_id,
                len(consumers),
            )
            stats = run_together(consumers, stop)
    except QueueApiRefused as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        api.close()
        engine.dispose()
    logger.info(
        "Pull consumer: stopped after %d messages (%d accepted, %d rejected, %d retried)",
        stats.messages,
        stats.accepted,
        stats.rejected,
        stats.retried,
    )


@click.command("rejected")
@click.option("--limit", default=20, show_default=True, help="Newest rejections to show.")
@click.pass_obj
def rejected(settings: Settings, limit: int) -> None:
    """Show the newest notifications that were rejected as unusable, and why."""
    engine = make_engine(settings.database_url)
    try:
        rows = newest_rejections(engine, limit=limit)
    finally:
        engine.dispose()
    click.echo(format_table(REJECTED_COLUMNS, [_summary(row) for row in rows]))


def _summary(row: Any) -> tuple[str, ...]:
    received = datetime.fromtimestamp(row.received_at / 1000, tz=UTC)
    body = (row.body or "").replace("\n", " ")
    return (
        received.strftime("%Y-%m-%d %H:%M:%S"),
        row.source,
        row.message_id or "-",
        row.reason,
        body[:60] + ("…" if len(body) > 60 else ""),
    )
