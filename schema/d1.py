"""The D1 write-back: task and ``videos`` rows upserted into a Cloudflare app's D1 database.

Both sides use it: the worker's follow-up task (``workers.mirror``) after a task ends, and
``videofleet d1 schema|sync`` on the producer side. Calls go through the official ``cloudflare``
SDK to D1's query API, ``POST /accounts/{account}/d1/database/{database}/query`` with a
``batch`` of statements (one HTTP call, run by D1 as one transaction).

Each row is one ``INSERT ... ON CONFLICT(id) DO UPDATE ... WHERE excluded.updated_at >
<table>.updated_at``: a repeat is a no-op and an older state arriving late never overwrites a
newer one, so mirrors converge on the newest row whatever order they run in. The API takes
parameters as strings (its OpenAPI spec types them so): INTEGER columns get the number's text,
which SQLite's column affinity stores as an INTEGER again; NULL is written as the literal
``NULL`` in the statement, since a string cannot say it; JSON text (``metadata``) stays TEXT.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cloudflare
import sqlalchemy as sa
from cloudflare.types.d1.database_query_params import MultipleQueriesBatch
from sqlalchemy.engine import Connection

from schema.errors import D1Rejected, D1Unavailable
from schema.metadata import MetadataColumn
from schema.settings import Settings
from schema.tables import tasks, videos

MIRRORED_TABLES = (tasks, videos)
_DDL_PATH = Path(__file__).with_name("d1.sql")
_DDL_TARGET = re.compile(r"\b(?:TABLE IF NOT EXISTS|ON)\s+(\w+)", re.IGNORECASE)
# The other unique key of ``videos``: a row the Cloudflare app created itself for the same
# object has its own id; the fleet's state lands on that row rather than failing the batch.
_VIDEO_SECOND_KEY = "r2_key"


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement and its string parameters, as D1's query API takes them."""

    sql: str
    params: tuple[str, ...] = ()

    def as_batch_item(self) -> MultipleQueriesBatch:
        return {"sql": self.sql, "params": list(self.params)}


@cache
def ddl_statements() -> tuple[Statement, ...]:
    """The ``CREATE`` statements of ``schema/d1.sql`` for the mirrored tables, in file order.

    The file stays the one definition of the D1 schema; the fleet's internal tables in it
    (poller watermarks, rejected events) are not the app's business and are left out.
    """
    names = {table.name for table in MIRRORED_TABLES}
    text = "\n".join(
        line for line in _DDL_PATH.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    statements = []
    for chunk in text.split(";"):
        sql = chunk.strip()
        target = _DDL_TARGET.search(sql)
        if sql and target is not None and target.group(1) in names:
            statements.append(Statement(sql))
    return tuple(statements)


def upsert(table: sa.Table, row: Mapping[Any, Any]) -> Statement:
    """The idempotent, newest-wins upsert of one row of ``table`` (see the module docstring)."""
    columns = [column.name for column in table.columns]
    values = ", ".join("NULL" if row[name] is None else "?" for name in columns)
    params = tuple(_as_text(table.c[name], row[name]) for name in columns if row[name] is not None)
    newer = f"excluded.updated_at > {table.name}.updated_at"
    # Names come from the fleet's own Table objects, values travel as parameters.
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({values}) "  # noqa: S608
        f"ON CONFLICT(id) DO UPDATE SET {_assignments(columns, keep=('id',))} WHERE {newer}"
    )
    if table is videos:
        keep = ("id", _VIDEO_SECOND_KEY, "created_at")
        sql += (
            f" ON CONFLICT({_VIDEO_SECOND_KEY}) DO UPDATE SET "
            f"{_assignments(columns, keep=keep)} WHERE {newer}"
        )
    return Statement(sql, params)


def _assignments(columns: Sequence[str], *, keep: Sequence[str]) -> str:
    return ", ".join(f"{name} = excluded.{name}" for name in columns if name not in keep)


def _as_text(column: sa.Column[Any], value: Any) -> str:
    if isinstance(column.type, MetadataColumn):
        return str(column.type.process_bind_param(value, None))
    # bool is an int: D1 (SQLite) has no boolean, 1/0 is what it stores.
    return str(int(value)) if isinstance(value, bool) else str(value)


def mirror_statements(conn: Connection, task_ids: Sequence[str]) -> list[Statement]:
    """Upserts of the current task rows ``task_ids`` and their ``videos`` rows."""
    task_rows = conn.execute(sa.select(tasks).where(tasks.c.id.in_(task_ids))).mappings().all()
    video_ids = sorted({row["video_id"] for row in task_rows if row["video_id"] is not None})
    video_rows = (
        conn.execute(sa.select(videos).where(videos.c.id.in_(video_ids))).mappings().all()
        if video_ids
        else []
    )
    return [upsert(videos, row) for row in video_rows] + [upsert(tasks, row) for row in task_rows]


def changed_since(
    conn: Connection, table: sa.Table, *, since_ms: int, page: int
) -> Iterator[list[Statement]]:
    """Upserts of ``table``'s rows updated at or after ``since_ms``, oldest first, ``page`` a time.

    Keyset pagination on ``(updated_at, id)``: rows changing during the walk are not skipped
    (they move to the end and are read again), and no offset is re-counted per page.
    """
    updated_at, row_id = table.c.updated_at, table.c.id
    position: tuple[int, str] | None = None
    while True:
        query = sa.select(table).where(updated_at >= since_ms)
        if position is not None:
            query = query.where(
                sa.or_(
                    updated_at > position[0],
                    sa.and_(updated_at == position[0], row_id > position[1]),
                )
            )
        rows = conn.execute(query.order_by(updated_at, row_id).limit(page)).mappings().all()
        if not rows:
            return
        yield [upsert(table, row) for row in rows]
        position = (rows[-1]["updated_at"], rows[-1]["id"])


def make_d1_client(settings: Settings, *, max_retries: int = 0) -> cloudflare.Cloudflare:
    """An SDK client for the configured D1 API (``D1_API_BASE_URL`` points tests at workerd).

    The worker passes no SDK retries: a failed call becomes ``D1Unavailable`` and the Celery
    task retries it with the fleet's backoff, without holding a worker slot while it waits.
    """
    return cloudflare.Cloudflare(
        api_token=settings.d1_api_token.get_secret_value(),
        base_url=settings.d1_api_base_url,
        max_retries=max_retries,
        timeout=settings.d1_timeout_s,
    )


def execute(
    client: cloudflare.Cloudflare, settings: Settings, statements: Sequence[Statement]
) -> int:
    """Run ``statements`` in batches of ``D1_BATCH_STATEMENTS``; return the rows D1 changed.

    Raises:
        D1Unavailable: no answer, 408, 429 or 5xx; the batches before it are applied (each
            batch is one transaction, and running one again is harmless).
        D1Rejected: any other refusal (bad SQL, token or database id).
    """
    changed = 0
    size = settings.d1_batch_statements
    for start in range(0, len(statements), size):
        chunk = statements[start : start + size]
        try:
            page = client.d1.database.query(
                settings.d1_database_id,
                account_id=settings.d1_account_id,
                batch=[statement.as_batch_item() for statement in chunk],
            )
        except cloudflare.APIConnectionError as exc:
            raise D1Unavailable(f"D1 unreachable: {exc}") from exc
        except cloudflare.APIStatusError as exc:
            if exc.status_code in (408, 429) or exc.status_code >= 500:
                raise D1Unavailable(f"D1 answered {exc.status_code}") from exc
            raise D1Rejected(f"D1 refused the batch ({exc.status_code}): {exc}") from exc
        changed += sum(int(result.meta.changes or 0) for result in page.result if result.meta)
    return changed
