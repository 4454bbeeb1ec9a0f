"""The admin commands of ``videofleet``: ``tasks list|show``, ``requeue`` and ``recover``."""

from __future__ import annotations

import getpass
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from producer.events.publish import ChainPublisher
from producer.ops import dlq, orphans, recovery, requeue
from producer.ops.inflight import Inflight
from producer.ops.report import format_table
from producer.ops.taskquery import (
    DEFAULT_LIMIT,
    TaskFilter,
    TaskView,
    find_tasks,
    get_task,
    parse_age,
)
from schema.db import make_engine
from schema.errors import TransientError
from schema.lifecycle import now_ms
from schema.settings import Settings
from schema.status import TaskStatus
from schema.storage import make_s3_client

# Bulk operations on more tasks than this show a progress bar on stderr.
PROGRESS_AFTER = 5
ERROR_COLUMN_CHARS = 70
LIST_COLUMNS = ("id", "key", "status", "step", "updated", "retries", "error")


class AgeType(click.ParamType):  # type: ignore[type-arg]
    """An age like ``90s``, ``15m``, ``1h`` or ``2d``, in seconds."""

    name = "age"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_age(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The task filter options shared by ``tasks list`` and ``requeue``."""
    options = [
        click.option(
            "--status",
            "statuses",
            multiple=True,
            type=click.Choice([s.value for s in TaskStatus]),
            help="Only tasks in this status (repeatable).",
        ),
        click.option("--older-than", type=AgeType(), help="Last change at least this long ago."),
        click.option("--newer-than", type=AgeType(), help="Last change at most this long ago."),
        click.option("--key-prefix", help="Only video keys starting with this."),
        click.option("--error-contains", help="Only error messages containing this text."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_filter(
    statuses: tuple[str, ...],
    older_than: float | None,
    newer_than: float | None,
    key_prefix: str | None,
    error_contains: str | None,
) -> TaskFilter:
    """The ``TaskFilter`` the shared options describe."""
    return TaskFilter(
        statuses=tuple(TaskStatus(s) for s in statuses),
        older_than_s=older_than,
        newer_than_s=newer_than,
        key_prefix=key_prefix,
        error_contains=error_contains,
    )


@click.group("tasks", invoke_without_command=True)
@click.pass_context
def tasks_group(ctx: click.Context) -> None:
    """List and inspect task rows (without a subcommand: the newest 50)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_command)


@tasks_group.command("list")
@filter_options
@click.option("--limit", default=DEFAULT_LIMIT, show_default=True, help="Rows to show at most.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_obj
def list_command(
    settings: Settings,
    statuses: tuple[str, ...] = (),
    older_than: float | None = None,
    newer_than: float | None = None,
    key_prefix: str | None = None,
    error_contains: str | None = None,
    limit: int = DEFAULT_LIMIT,
    as_json: bool = False,
) -> None:
    """Tasks matching the filters, most recently changed first."""
    task_filter = build_filter(statuses, older_than, newer_than, key_prefix, error_contains)
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        views = find_tasks(conn, task_filter, limit=limit)
    engine.dispose()
    if as_json:
        click.echo(json.dumps([v.as_dict() for v in views], indent=2, sort_keys=True))
        return
    now = now_ms()
    # One bucket needs no column; with several, a key alone does not say which object it is.
    with_bucket = len(settings.served_buckets) > 1
    columns = (LIST_COLUMNS[0], "bucket", *LIST_COLUMNS[1:]) if with_bucket else LIST_COLUMNS
    click.echo(format_table(columns, [_list_line(v, now, with_bucket) for v in views]))


def _list_line(view: TaskView, now: int, with_bucket: bool) -> tuple[str, ...]:
    error = (view.error_message or "").replace("\n", " ")
    if len(error) > ERROR_COLUMN_CHARS:
        error = error[: ERROR_COLUMN_CHARS - 1] + "…"
    bucket = (view.bucket or "-",) if with_bucket else ()
    return (
        view.id,
        *bucket,
        view.video_key,
        view.status,
        view.step or "-",
        f"{_age(now - view.updated_at)} ago",
        str(view.retry_count),
        error,
    )


def _age(ms: int) -> str:
    seconds = max(0, ms) // 1000
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


@tasks_group.command("show")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="The row as one JSON document.")
@click.pass_obj
def show_command(settings: Settings, task_id: str, as_json: bool) -> None:
    """One task with its metadata (probe, thumbnails, runs, requeues, recoveries)."""
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        view = get_task(conn, task_id)
    engine.dispose()
    if view is None:
        raise click.ClickException(f"no task {task_id}")
    if as_json:
        click.echo(json.dumps(view.as_dict(), indent=2, sort_keys=True))
        return
    fields = view.as_dict()
    metadata = fields.pop("metadata")
    for name in ("created_at", "updated_at"):
        fields[name] = f"{fields[name]} ({_when(fields[name])})"
    width = max(len(k) for k in fields)
    for name, value in fields.items():
        click.echo(f"{name.ljust(width)}  {'-' if value is None else value}")
    click.echo("metadata:")
    click.echo(json.dumps(metadata, indent=2, sort_keys=True))


@click.command("requeue")
@click.argument("task_ids", nargs=-1)
@filter_options
@click.option("--limit", default=100, show_default=True, help="Tasks a filter requeues at most.")
@click.option("--from-start", is_flag=True, help="Run every step, not just from the failed one.")
@click.option("--force", is_flag=True, help="Requeue completed tasks too.")
@click.option("--dry-run", is_flag=True, help="Say what would be requeued; change nothing.")
@click.option("--by", default=getpass.getuser, show_default="your user name", help="Who asks.")
@click.option("--reason", help="Why (kept in the task's metadata.requeues).")
@click.option("--json", "as_json", is_flag=True, help="Outcomes as JSON.")
@click.pass_obj
def requeue_command(
    settings: Settings,
    task_ids: tuple[str, ...],
    statuses: tuple[str, ...],
    older_than: float | None,
    newer_than: float | None,
    key_prefix: str | None,
    error_contains: str | None,
    limit: int,
    from_start: bool,
    force: bool,
    dry_run: bool,
    by: str,
    reason: str | None,
    as_json: bool,
) -> None:
    """Run failed tasks again: TASK_IDS, or every task matching the filters (failed by default).

    A task resumes at the step that failed, keeping what earlier steps learnt; --from-start runs
    the whole chain. Completed tasks need --force; pending and processing tasks are left alone.
    """
    task_filter = build_filter(statuses, older_than, newer_than, key_prefix, error_contains)
    if task_ids and task_filter != TaskFilter():
        raise click.UsageError("give task ids or filters, not both")
    if not task_ids and task_filter == TaskFilter():
        raise click.UsageError("give task ids or a filter (e.g. --status failed)")
    request = requeue.Request(
        by=by, reason=reason, from_start=from_start, force=force, dry_run=dry_run
    )
    engine = make_engine(settings.database_url)
    ids = list(task_ids) or requeue.matching_ids(engine, task_filter, limit=limit)
    try:
        with ChainPublisher(settings) as publisher, _progress(len(ids)) as advance:
            outcomes = requeue.requeue_many(engine, publisher, ids, request, on_each=advance)
    except TransientError as exc:
        raise click.ClickException(f"{exc} (that task was left as it was)") from exc
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([o.as_dict() for o in outcomes], indent=2))
    else:
        for outcome in outcomes:
            click.echo(_outcome_line(outcome))
        click.echo(_summary(outcomes))
    ok = {requeue.Result.REQUEUED, requeue.Result.WOULD_REQUEUE}
    if task_ids and any(o.result not in ok for o in outcomes):
        sys.exit(1)


@contextmanager
def _progress(total: int) -> Iterator[Callable[[requeue.Outcome], None]]:
    if total <= PROGRESS_AFTER:
        yield lambda _outcome: None
        return
    with click.progressbar(length=total, label="requeueing", file=sys.stderr) as bar:
        yield lambda _outcome: bar.update(1)


def _outcome_line(outcome: requeue.Outcome) -> str:
    if outcome.from_step is not None:
        detail = f"from {outcome.from_step}"
        if outcome.workflow_id:
            detail += f" (chain {outcome.workflow_id})"
    else:
        detail = outcome.detail
    return f"{outcome.result:<13} {outcome.task_id}  {outcome.key or '-'}  {detail}"


def _summary(outcomes: list[requeue.Outcome]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result.value] = counts.get(outcome.result.value, 0) + 1
    if not counts:
        return "no matching tasks"
    return ", ".join(f"{n} {result}" for result, n in counts.items())


@click.command("recover")
@click.option("--once", is_flag=True, help="One sweep, then exit (a manual run).")
@click.option(
    "--interval-s",
    type=click.FloatRange(min=1),
    default=None,
    help="Seconds between sweeps when looping [default: RECOVERY_INTERVAL_S].",
)
@click.pass_obj
def recover_command(settings: Settings, once: bool, interval_s: float | None) -> None:
    """Give dead workers' messages back, republish lost chains; fail tasks stuck too often.

    Each sweep also aborts multipart uploads no video row knows (orphans), once they are
    RECOVERY_ORPHAN_MULTIPART_AFTER_S old.
    """
    engine = make_engine(settings.database_url)
    live = Inflight(settings)
    s3 = make_s3_client(settings)
    try:
        with ChainPublisher(settings) as publisher:

            def sweep() -> list[recovery.Outcome]:
                # Dead letters first: their rows fail rather than being republished to die again.
                _report_dead_letters(dlq.drain(engine, settings))
                outcomes = recovery.recover_once(engine, publisher, live, settings)
                after_s = settings.recovery_orphan_multipart_after_s
                aborted = orphans.abort_orphans(
                    engine, s3, bucket=settings.s3_bucket, older_than_s=after_s
                )
                _report_orphans(aborted)
                return outcomes

            if once:
                try:
                    outcomes = sweep()
                except TransientError as exc:
                    raise click.ClickException(str(exc)) from exc
                _report_recovery(outcomes)
                click.echo(f"{len(outcomes)} stuck task(s) handled")
                return
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            interval = interval_s or settings.recovery_interval_s
            click.echo(f"recovering stuck tasks every {interval:g} s (Ctrl-C stops)", err=True)
            recovery.run_forever(sweep, interval_s=interval, report=_report_recovery, stop=stop)
    finally:
        s3.close()
        live.close()
        engine.dispose()


def _report_orphans(aborted: list[orphans.Orphan]) -> None:
    for orphan in aborted:
        click.echo(f"{'aborted':<12} multipart upload {orphan.upload_id}  {orphan.key}  (orphan)")


def _report_dead_letters(letters: list[dlq.DeadLetter]) -> None:
    for letter in letters:
        click.echo(f"{'dead-letter':<12} {letter.task_id}  {letter.reason}")


def _report_recovery(outcomes: list[recovery.Outcome]) -> None:
    for o in outcomes:
        detail = o.detail or (f"chain {o.workflow_id}" if o.workflow_id else "")
        click.echo(f"{o.result:<12} {o.task_id}  {o.key}  was {o.status} in {o.step}  {detail}")
