"""One task row in an in-memory SQLite database: what the broker-free schema tests work on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from schema.tables import metadata_obj, tasks


@contextmanager
def one_task_row(**values: Any) -> Iterator[sa.Connection]:
    """A connection (in a transaction) to a fresh database holding task ``t1`` with ``values``."""
    engine = sa.create_engine("sqlite://")
    metadata_obj.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            tasks.insert().values(id="t1", video_key="k", created_at=1, updated_at=1, **values)
        )
        yield connection
    engine.dispose()
