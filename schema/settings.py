"""The one typed settings object each process reads at start-up.

Field names are the environment variable names (case-insensitive); an optional ``.env`` in the
working directory is read too. With nothing set at all, the embedded defaults apply: a SQLite
file, Redis on localhost and a local S3 endpoint, so ``make demo`` needs no configuration.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
# RabbitMQ: deliveries of one message before it is dead-lettered (a worker died with it each time).
DEFAULT_BROKER_DELIVERY_LIMIT = 5
# Upload side: the design's 5 GB ceiling (R2's single PUT allows 5 GiB - 5 MiB), its 50 MB
# single-request threshold and part size (as MiB, like the page's 50 * 1024 * 1024), and R2's
# part-size bounds.
DEFAULT_UPLOAD_MAX_BYTES = 5_000_000_000
DEFAULT_MULTIPART_BYTES = 50 * 1024 * 1024
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PART_BYTES = 5 * 1024 * 1024 * 1024
ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
DEFAULT_INGEST_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
DEFAULT_INGEST_MAX_SIZE_BYTES = 5 * 1024**3
DEFAULT_POLL_INTERVAL_S = 30.0
DEFAULT_POLL_LOOKBACK_S = 3600
PLACEHOLDER_SECRETS = frozenset({"", DEFAULT_S3_KEY, "changeme", "change-me", "secret"})
DEFAULT_CF_API_BASE_URL = "https://api.cloudflare.com/client/v4"
# Pull loops per ``videofleet pull`` process: beyond a few, run more processes instead.
MAX_PULL_CONCURRENCY = 16
MAX_PULL_BATCH_SIZE = 100
MAX_QUEUE_DELAY_S = 43_200  # Cloudflare Queues: longest retry delay and visibility timeout (12 h)
DEFAULT_RECOVERY_PENDING_AFTER_S = 900
DEFAULT_RECOVERY_MARGIN_S = 120
DEFAULT_RECOVERY_MAX_ATTEMPTS = 3
DEFAULT_RECOVERY_INTERVAL_S = 60
PLACEHOLDER_ADMIN_PASSWORDS = PLACEHOLDER_SECRETS | {"admin", "password", "videofleet"}


# 8K UHD (7680x4320) fits; a 16000x16000 frame (a gigabyte decoded) does not.
DEFAULT_MAX_VIDEO_PIXELS = 7680 * 4320


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
    upload_max_bytes: int = Field(default=DEFAULT_UPLOAD_MAX_BYTES, ge=1)
    multipart_threshold_bytes: int = Field(default=DEFAULT_MULTIPART_BYTES, ge=MIN_PART_BYTES)
    multipart_part_size_bytes: int = Field(
        default=DEFAULT_MULTIPART_BYTES, ge=MIN_PART_BYTES, le=MAX_PART_BYTES
    )
    status_url_expiry_s: int = Field(default=300, ge=1, le=604_800)
    upload_allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_max_age_s: int = Field(default=3600, ge=0, le=86_400)
    access_team_domain: str = ""
    access_aud: str = ""
    access_jwks_url: str = ""
    access_disabled: bool = False
    access_leeway_s: int = Field(default=30, ge=0, le=300)
    access_jwks_lifespan_s: int = Field(default=3600, ge=1)
    access_jwks_refetch_cooldown_s: float = Field(default=30.0, ge=0)
    rate_limit_redis_url: str = ""
    rate_limit_key_prefix: str = "videofleet-limits"
    rate_limit_client_ip_header: str = ""
    rate_limit_upload_urls_per_user_per_minute: int = Field(default=10, ge=1)
    rate_limit_upload_urls_per_ip_per_minute: int = Field(default=30, ge=1)
    rate_limit_upload_bytes_per_user_per_day: int = Field(default=50_000_000_000, ge=1)
    rate_limit_auth_failures_per_ip_per_hour: int = Field(default=10, ge=1)

    @field_validator("upload_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """Accept a comma-separated list; each origin is scheme://host[:port], as CORS wants."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for origin in value:
                if not ORIGIN_RE.fullmatch(str(origin)):
                    raise ValueError(
                        f"{origin!r} is not an origin: use scheme://host[:port], no path or slash"
                    )
        return value

    @model_validator(mode="after")
    def _check_upload_api(self) -> Self:
        """Never run the upload API without Access in production, whatever else is set."""
        if self.access_disabled and self.environment == "production":
            raise ValueError("ACCESS_DISABLED=true is refused when ENVIRONMENT=production")
        if self.access_team_domain and not self.access_team_domain.startswith("https://"):
            raise ValueError(
                "ACCESS_TEAM_DOMAIN must look like https://<team>.cloudflareaccess.com"
            )
        if self.multipart_threshold_bytes > self.upload_max_bytes:
            raise ValueError("MULTIPART_THRESHOLD_BYTES must not exceed UPLOAD_MAX_BYTES")
        return self

    thumbnails_prefix: str = "thumbnails/"
    thumbnail_count: int = Field(default=5, ge=1, le=100)
    thumbnail_width_px: int = Field(default=320, ge=16, le=3840)
    # Frames larger than this are refused at validation: decoding one costs its size in memory.
    max_video_pixels: int = Field(default=DEFAULT_MAX_VIDEO_PIXELS, ge=64 * 64)

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

    ingest_key_prefix: str = ""
    ingest_extensions: Annotated[tuple[str, ...], NoDecode] = DEFAULT_INGEST_EXTENSIONS
    ingest_min_size_bytes: int = Field(default=0, ge=0)
    ingest_max_size_bytes: int = Field(default=DEFAULT_INGEST_MAX_SIZE_BYTES, ge=1)
    poll_interval_s: float = Field(default=DEFAULT_POLL_INTERVAL_S, gt=0)
    poll_lookback_s: int = Field(default=DEFAULT_POLL_LOOKBACK_S, ge=0)

    @field_validator("ingest_extensions", mode="before")
    @classmethod
    def _split_extensions(cls, value: object) -> object:
        """``INGEST_EXTENSIONS=.mp4,.MOV`` → ``(".mp4", ".mov")``; empty means every extension."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            names = (str(v).strip().lower() for v in value)
            return tuple(n if n.startswith(".") else f".{n}" for n in names if n)
        return value

    step_soft_time_limit_s: int = Field(default=DEFAULT_STEP_SOFT_TIME_LIMIT_S, ge=1)
    step_time_limit_s: int = Field(default=DEFAULT_STEP_TIME_LIMIT_S, ge=1)
    visibility_timeout_s: int = Field(default=DEFAULT_VISIBILITY_TIMEOUT_S, ge=1)
    broker_delivery_limit: int = Field(default=DEFAULT_BROKER_DELIVERY_LIMIT, ge=1)

    # transports
    # Cloudflare Queues HTTP pull consumer (``videofleet pull``).
    cf_account_id: str = ""
    cf_queue_id: str = ""
    cf_api_token: SecretStr = SecretStr("")
    cf_api_base_url: str = DEFAULT_CF_API_BASE_URL
    cf_api_timeout_s: float = Field(default=30.0, gt=0)
    pull_batch_size: int = Field(default=100, ge=1, le=MAX_PULL_BATCH_SIZE)
    pull_concurrency: int = Field(default=1, ge=1, le=MAX_PULL_CONCURRENCY)
    pull_visibility_timeout_ms: int = Field(default=60_000, ge=1, le=MAX_QUEUE_DELAY_S * 1000)
    pull_retry_delay_s: int = Field(default=30, ge=0, le=MAX_QUEUE_DELAY_S)
    pull_retry_delay_max_s: int = Field(default=MAX_QUEUE_DELAY_S, ge=0, le=MAX_QUEUE_DELAY_S)
    pull_backoff_initial_s: float = Field(default=1.0, gt=0)
    pull_backoff_max_s: float = Field(default=300.0, gt=0)
    pull_idle_initial_s: float = Field(default=0.5, gt=0)
    pull_idle_max_s: float = Field(default=10.0, gt=0)
    # Push webhook (``POST /webhook/events``); production refuses to start without auth.
    webhook_enabled: bool = True
    webhook_token: SecretStr = SecretStr("")
    webhook_hmac_secret: SecretStr = SecretStr("")
    webhook_access_client_id: str = ""
    webhook_access_client_secret: SecretStr = SecretStr("")
    webhook_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    webhook_retry_after_s: int = Field(default=10, ge=1)

    # -- operations (issue 4) --

    # flower, metrics, notifications
    flower_basic_auth: SecretStr | None = None
    flower_url: str | None = None
    metrics_window_s: int = Field(default=3600, ge=1)
    completion_webhook_url: str | None = None
    completion_webhook_secret: SecretStr | None = None
    completion_webhook_expiry_s: int = Field(default=86_400, ge=1)
    completion_webhook_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator(
        "flower_basic_auth",
        "flower_url",
        "completion_webhook_url",
        "completion_webhook_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # FOO= in an env file or compose's ${FOO:-} means "not configured", not "".
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_operations_access(self) -> Self:
        """Refuse malformed Flower credentials and an unsigned or non-HTTP webhook."""
        if self.flower_basic_auth is not None:
            pairs = [p.partition(":") for p in self.flower_basic_auth.get_secret_value().split(",")]
            if not all(user and password for user, _, password in pairs):
                raise ValueError("FLOWER_BASIC_AUTH must be user:password[,user2:password2]")
        if self.completion_webhook_url is not None:
            if not self.completion_webhook_url.startswith(("http://", "https://")):
                raise ValueError("COMPLETION_WEBHOOK_URL must be an http:// or https:// URL")
            secret = self.completion_webhook_secret
            if secret is None or len(secret.get_secret_value()) < 16:
                raise ValueError(
                    "COMPLETION_WEBHOOK_SECRET must be set (16+ characters) "
                    "when COMPLETION_WEBHOOK_URL is"
                )
        return self

    # admin and recovery
    admin_username: str = ""
    admin_password: SecretStr = SecretStr("")
    recovery_pending_after_s: int = Field(default=DEFAULT_RECOVERY_PENDING_AFTER_S, ge=1)
    recovery_margin_s: int = Field(default=DEFAULT_RECOVERY_MARGIN_S, ge=0)
    recovery_max_attempts: int = Field(default=DEFAULT_RECOVERY_MAX_ATTEMPTS, ge=0, le=100)
    recovery_interval_s: float = Field(default=DEFAULT_RECOVERY_INTERVAL_S, gt=0)

    @property
    def admin_enabled(self) -> bool:
        """Whether the admin API and page are served (both credentials configured)."""
        return bool(self.admin_username and self.admin_password.get_secret_value())

    @model_validator(mode="after")
    def _check_admin_credentials(self) -> Self:
        """Refuse half-configured admin credentials, and a placeholder password in production."""
        password = self.admin_password.get_secret_value()
        if bool(self.admin_username) != bool(password):
            raise ValueError("set both ADMIN_USERNAME and ADMIN_PASSWORD, or neither")
        if (
            self.environment == "production"
            and self.admin_username
            and (password in PLACEHOLDER_ADMIN_PASSWORDS or password == self.admin_username)
        ):
            raise ValueError("ADMIN_PASSWORD is a placeholder; set a real password")
        return self

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
        if self.ingest_min_size_bytes > self.ingest_max_size_bytes:
            raise ValueError("INGEST_MIN_SIZE_BYTES must not exceed INGEST_MAX_SIZE_BYTES")
        if not self.thumbnails_prefix.endswith("/"):
            raise ValueError("THUMBNAILS_PREFIX must end with '/'")
        secret = self.s3_secret_access_key.get_secret_value()
        if self.environment == "production" and secret in PLACEHOLDER_SECRETS:
            raise ValueError("S3_SECRET_ACCESS_KEY is a placeholder; set a real secret")
        return self

    # Runs after ``_check_consistency`` (definition order), so the other checks report first.
    @model_validator(mode="after")
    def _check_transports(self) -> Self:
        """Refuse an unauthenticated webhook in production and inverted pull tunables."""
        if self.pull_backoff_initial_s > self.pull_backoff_max_s:
            raise ValueError("PULL_BACKOFF_INITIAL_S must not exceed PULL_BACKOFF_MAX_S")
        if self.pull_idle_initial_s > self.pull_idle_max_s:
            raise ValueError("PULL_IDLE_INITIAL_S must not exceed PULL_IDLE_MAX_S")
        if bool(self.webhook_access_client_id) != bool(
            self.webhook_access_client_secret.get_secret_value()
        ):
            raise ValueError(
                "WEBHOOK_ACCESS_CLIENT_ID and WEBHOOK_ACCESS_CLIENT_SECRET go together"
            )
        if self.environment != "production" or not self.webhook_enabled:
            return self
        secrets = {
            "WEBHOOK_TOKEN": self.webhook_token.get_secret_value(),
            "WEBHOOK_HMAC_SECRET": self.webhook_hmac_secret.get_secret_value(),
            "WEBHOOK_ACCESS_CLIENT_SECRET": self.webhook_access_client_secret.get_secret_value(),
        }
        configured = {name: value for name, value in secrets.items() if value}
        if not configured:
            raise ValueError(
                "the webhook has no authentication: set WEBHOOK_TOKEN, WEBHOOK_HMAC_SECRET or "
                "WEBHOOK_ACCESS_CLIENT_ID/SECRET, or WEBHOOK_ENABLED=false"
            )
        for name, value in configured.items():
            if value in PLACEHOLDER_SECRETS:
                raise ValueError(f"{name} is a placeholder; set a real secret")
        return self

    @property
    def webhook_auth_configured(self) -> bool:
        """Whether any webhook authentication method is set (development may run without)."""
        return bool(
            self.webhook_token.get_secret_value()
            or self.webhook_hmac_secret.get_secret_value()
            or self.webhook_access_client_secret.get_secret_value()
        )
