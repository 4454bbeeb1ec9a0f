"""The fleet fixtures moved to ``tests/conftest.py`` (e2e tests share them); names re-exported.

Test modules import these helpers from here; fixtures themselves are never imported, so each
stays defined once and a whole run starts one worker per database.
"""

from __future__ import annotations

from tests.conftest import (
    BUCKET,
    ENDED,
    POSTGRES_URL,
    REDIS_DBS,
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
    "TASK_TIMEOUT_S",
    "TEST_TUNING",
    "Fleet",
    "S3Server",
    "_free_port",
    "redis_url",
    "reset_database",
]
