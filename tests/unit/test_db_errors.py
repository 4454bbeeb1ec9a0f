"""A lost database becomes a retryable error; an error about the data passes through."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from schema.db import make_engine, transient_db_errors
from schema.errors import DatabaseUnavailable, TransientError


def test_an_unreachable_database_raises_database_unavailable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/missing-dir/none.db")
    with (
        pytest.raises(DatabaseUnavailable, match="OperationalError") as caught,
        transient_db_errors(),
        engine.connect(),
    ):
        pass
    assert isinstance(caught.value, TransientError)
    assert isinstance(caught.value.__cause__, sa.exc.OperationalError)


def test_an_integrity_error_is_not_translated(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    with pytest.raises(sa.exc.IntegrityError), transient_db_errors(), engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
