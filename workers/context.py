"""Per-process resources of a worker: settings, database engine, S3 client.

Created on first use in the process that uses them, never at import, and rebuilt in each
prefork child (``workers.signals``), because a SQLAlchemy pool must not cross ``fork()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from schema.changes import ChangeMarks
from schema.db import make_engine
from schema.settings import Settings
from schema.storage import make_s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True, slots=True)
class Deps:
    """What a step needs from the outside world."""

    settings: Settings
    engine: Engine
    s3: S3Client
    marks: ChangeMarks

    def changed(self, video_key: str) -> None:
        """Tell the status micro-cache that what ``video_key``'s status shows has changed."""
        if self.settings.status_cache_enabled:
            self.marks.mark(video_key)


@cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment and ``.env``."""
    return Settings()


_deps: Deps | None = None


def get_deps() -> Deps:
    """Return this process's resources, creating them on first use."""
    global _deps
    if _deps is None:
        settings = get_settings()
        _deps = Deps(
            settings,
            make_engine(settings.database_url),
            make_s3_client(settings),
            ChangeMarks(settings),
        )
    return _deps


def reset_deps() -> None:
    """Forget inherited resources (after fork) so the next use builds fresh ones."""
    global _deps
    if _deps is not None:
        _deps.engine.dispose(close=False)
        _deps.marks.close()
    _deps = None
