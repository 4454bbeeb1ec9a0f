"""``videofleet poll``: run the bucket poller until SIGTERM (or one scan with ``--once``)."""

from __future__ import annotations

import signal
from types import FrameType

import click

from producer.events.publish import ChainPublisher
from producer.events.rules import EventRules
from producer.transports.poller import Poller
from schema.db import make_engine
from schema.errors import TransientError
from schema.settings import Settings
from schema.storage import make_s3_client


@click.command("poll")
@click.option(
    "--interval-s", type=float, default=None, help="Seconds between scans [POLL_INTERVAL_S]."
)
@click.option("--once", is_flag=True, help="Scan once to the end, then exit.")
@click.option("--prefix", default=None, help="Key prefix to list [INGEST_KEY_PREFIX].")
@click.option("--bucket", default=None, help="Bucket to list [S3_BUCKET].")
@click.pass_obj
def poll(
    settings: Settings,
    interval_s: float | None,
    once: bool,
    prefix: str | None,
    bucket: str | None,
) -> None:
    """List the bucket for new objects and ingest them (stores without notifications).

    Progress is stored in the database: a restart neither re-emits nor skips objects. SIGTERM or
    Ctrl-C finishes the page being processed, stores the progress and exits.
    """
    bucket = bucket or settings.s3_bucket
    if bucket not in settings.served_buckets:
        served = ", ".join(settings.served_buckets)
        raise click.UsageError(f"bucket {bucket!r} is not served (INGEST_BUCKETS: {served})")
    engine = make_engine(settings.database_url)
    try:
        with ChainPublisher(settings) as publisher:
            poller = Poller(
                engine=engine,
                publisher=publisher,
                storage=make_s3_client(settings),
                bucket=bucket,
                prefix=settings.ingest_key_prefix if prefix is None else prefix,
                rules=EventRules.from_settings(settings),
                lookback_s=settings.poll_lookback_s,
            )

            def _stop(signum: int, _frame: FrameType | None) -> None:
                click.echo(f"{signal.Signals(signum).name}: finishing the current page", err=True)
                poller.stop()

            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            poller.run(interval_s=interval_s or settings.poll_interval_s, once=once)
    except TransientError as exc:
        raise click.ClickException(f"{exc} (progress is stored: run it again)") from exc
    finally:
        engine.dispose()
