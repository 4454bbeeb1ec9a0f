"""Integration tests use the session's services from ``tests/conftest.py``.

The service classes moved to ``tests/fleet.py`` so that end-to-end tests share them; these names
stay importable from here.
"""

from __future__ import annotations

from tests.fleet import (
    BUCKET,
    ENDED,
    POSTGRES_URL,
    REDIS_DBS,
    REDIS_HOST,
    REDIS_PORT,
    TASK_TIMEOUT_S,
    TEST_TUNING,
    Fleet,
    S3Server,
    _free_port,
    redis_url,
    reset_database,
)

__all__ = [
    "BUCKET",
    "ENDED",
    "POSTGRES_URL",
    "REDIS_DBS",
    "REDIS_HOST",
    "REDIS_PORT",
    "TASK_TIMEOUT_S",
    "TEST_TUNING",
    "Fleet",
    "S3Server",
    "_free_port",
    "redis_url",
    "reset_database",
]
