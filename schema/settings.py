"""The one typed settings object each process reads at start-up.

Field names are the environment variable names (case-insensitive); an optional ``.env`` in the
working directory is read too. With nothing set at all, the embedded defaults apply: a SQLite
file, Redis on localhost and a local S3 endpoint, so ``make demo`` needs no configuration.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///videofleet.db"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_S3_ENDPOINT_URL = "http://127.0.0.1:9000"
DEFAULT_S3_KEY = "videofleet-local"
DEFAULT_RETRY_LIMIT = 3
DEFAULT_RETRY_DELAY_S = 30.0
DEFAULT_RETRY_BACKOFF_MAX_S = 600
DEFAULT_STEP_SOFT_TIME_LIMIT_S = 300
DEFAULT_STEP_TIME_LIMIT_S = 330
DEFAULT_VISIBILITY_TIMEOUT_S = 3600
PLACEHOLDER_SECRETS = frozenset({"", DEFAULT_S3_KEY, "changeme", "change-me", "secret"})


class Settings(BaseSettings):
    """Every tunable of the fleet; see ``.env.example`` for what each one means."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str = DEFAULT_BROKER_URL

    s3_endpoint_url: str = DEFAULT_S3_ENDPOINT_URL
    s3_region: str = "us-east-1"
    s3_access_key_id: str = DEFAULT_S3_KEY
    s3_secret_access_key: SecretStr = SecretStr(DEFAULT_S3_KEY)
    s3_bucket: str = "video-uploads"
    s3_connect_timeout_s: float = Field(default=5.0, gt=0)
    s3_read_timeout_s: float = Field(default=30.0, gt=0)
    presign_expiry_s: int = Field(default=3600, ge=1, le=604_800)

    # -- upload API (issue 5) --

    thumbnails_prefix: str = "thumbnails/"
    thumbnail_count: int = Field(default=5, ge=1, le=100)
    thumbnail_width_px: int = Field(default=320, ge=16, le=3840)

    # -- media fast path (issue 6) --
    thumbnail_jpeg_quality: int = Field(default=3, ge=2, le=31)
    thumbnail_search_attempts: int = Field(default=5, ge=1, le=20)
    thumbnail_decoders: int = Field(default=1, ge=1, le=8)
    range_read_block_bytes: int = Field(default=128 * 1024, ge=4096)
    range_read_max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=4096)
    range_read_cache_bytes: int = Field(default=8 * 1024 * 1024, ge=65536)
    storyboard_enabled: bool = True
    storyboard_max_tiles: int = Field(default=30, ge=1, le=400)
    storyboard_min_interval_s: float = Field(default=2.0, gt=0)
    storyboard_columns: int = Field(default=6, ge=1, le=50)
    storyboard_tile_width_px: int = Field(default=160, ge=16, le=1920)

    retry_limit: int = Field(default=DEFAULT_RETRY_LIMIT, ge=0, le=100)
    retry_delay_s: float = Field(default=DEFAULT_RETRY_DELAY_S, gt=0)
    retry_backoff_max_s: int = Field(default=DEFAULT_RETRY_BACKOFF_MAX_S, ge=1)
    retry_jitter: bool = True

    # -- ingestion (issue 3) --

    step_soft_time_limit_s: int = Field(default=DEFAULT_STEP_SOFT_TIME_LIMIT_S, ge=1)
    step_time_limit_s: int = Field(default=DEFAULT_STEP_TIME_LIMIT_S, ge=1)
    visibility_timeout_s: int = Field(default=DEFAULT_VISIBILITY_TIMEOUT_S, ge=1)

    # -- operations (issue 4) --

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        """Refuse combinations that would break crash safety or leak a placeholder secret."""
        if self.step_soft_time_limit_s >= self.step_time_limit_s:
            raise ValueError("STEP_SOFT_TIME_LIMIT_S must be below STEP_TIME_LIMIT_S")
        # An unacked message older than the visibility timeout is redelivered while it may still
        # be running, and a retry's countdown is held unacked by the worker; both must fit.
        floor = self.step_time_limit_s + self.retry_backoff_max_s
        if self.visibility_timeout_s <= floor:
            raise ValueError(
                f"VISIBILITY_TIMEOUT_S ({self.visibility_timeout_s}) must exceed "
                f"STEP_TIME_LIMIT_S + RETRY_BACKOFF_MAX_S ({floor})"
            )
        if not self.thumbnails_prefix.endswith("/"):
            raise ValueError("THUMBNAILS_PREFIX must end with '/'")
        secret = self.s3_secret_access_key.get_secret_value()
        if self.environment == "production" and secret in PLACEHOLDER_SECRETS:
            raise ValueError("S3_SECRET_ACCESS_KEY is a placeholder; set a real secret")
        return self
