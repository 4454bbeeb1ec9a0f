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

from schema.buckets import bucket_name_problem
from schema.video_types import VIDEO_TYPES

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
# Every storage request (boto3 and ranged reads) is tried this often before the step sees an error.
DEFAULT_S3_MAX_ATTEMPTS = 6
# How long a worker keeps re-publishing to a broker that is down (the next step of a chain, a
# retry) before the step is put back in the queue instead.
DEFAULT_BROKER_PUBLISH_RETRY_S = 60.0
# Celery counts in KiB: a pool process that ends a task above 1.5 GiB resident is replaced.
DEFAULT_WORKER_MAX_MEMORY_PER_CHILD_KIB = 1536 * 1024
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
DEFAULT_INGEST_EXTENSIONS = tuple(VIDEO_TYPES)
DEFAULT_INGEST_MAX_SIZE_BYTES = 5 * 1024**3
DEFAULT_POLL_INTERVAL_S = 30.0
DEFAULT_POLL_LOOKBACK_S = 3600
PLACEHOLDER_SECRETS = frozenset({"", DEFAULT_S3_KEY, "changeme", "change-me", "secret"})
DEFAULT_CF_API_BASE_URL = "https://api.cloudflare.com/client/v4"
# Pull loops per ``videofleet pull`` process: beyond a few, run more processes instead.
MAX_PULL_CONCURRENCY = 16
MAX_PULL_BATCH_SIZE = 100
# D1 write-back: statements per query API call (each one row; a call must finish within 30 s).
MAX_D1_BATCH_STATEMENTS = 500
# The longest wait between Queues API calls in trouble, even when Retry-After asks for more.
DEFAULT_PULL_BACKOFF_MAX_S = 30.0
MAX_QUEUE_DELAY_S = 43_200  # Cloudflare Queues: longest retry delay and visibility timeout (12 h)
# Stuck-task recovery (``producer.ops.recovery``): a row is back in the queue at most
# PENDING_AFTER + INTERVAL + INSPECT_TIMEOUT (~77 s) after its last change, a dead worker's
# message at most INTERVAL + INSPECT_TIMEOUT (~17 s) after the sweep that finds it.
DEFAULT_RECOVERY_PENDING_AFTER_S = 60
DEFAULT_RECOVERY_MAX_ATTEMPTS = 3
DEFAULT_RECOVERY_INTERVAL_S = 15
DEFAULT_RECOVERY_UNACKED_GRACE_S = 10.0
DEFAULT_RECOVERY_INSPECT_TIMEOUT_S = 2.0
PLACEHOLDER_ADMIN_PASSWORDS = PLACEHOLDER_SECRETS | {"admin", "password", "videofleet"}
# Read side: a micro-cache stays under a minute; a presign window plus the URL lifetime must fit
# in SigV4's 7-day limit.
MAX_STATUS_FRESH_S = 59
MAX_STATUS_URL_WINDOW_S = 86_400
MAX_PRESIGN_S = 604_800


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
    s3_max_attempts: int = Field(default=DEFAULT_S3_MAX_ATTEMPTS, ge=1, le=20)
    s3_retry_mode: Literal["standard", "adaptive"] = "standard"
    presign_expiry_s: int = Field(default=3600, ge=1, le=604_800)

    # -- upload API: presigned uploads, Cloudflare Access, rate limits, bucket CORS --
    upload_max_bytes: int = Field(default=DEFAULT_UPLOAD_MAX_BYTES, ge=1)
    multipart_threshold_bytes: int = Field(default=DEFAULT_MULTIPART_BYTES, ge=MIN_PART_BYTES)
    multipart_part_size_bytes: int = Field(
        default=DEFAULT_MULTIPART_BYTES, ge=MIN_PART_BYTES, le=MAX_PART_BYTES
    )
    status_url_expiry_s: int = Field(default=300, ge=1, le=604_800)
    # -- read side (issue 14): stable links, conditional status, micro-cache --
    status_url_window_s: int = Field(default=3600, ge=0, le=MAX_STATUS_URL_WINDOW_S)
    thumbnails_public_base_url: str = ""
    status_cache_enabled: bool = True
    status_fresh_s: int = Field(default=2, ge=1, le=MAX_STATUS_FRESH_S)
    status_final_fresh_s: int = Field(default=30, ge=1, le=MAX_STATUS_FRESH_S)
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
    # Failed logins per client IP per hour at the other doors, each counted on its own.
    rate_limit_admin_auth_failures_per_ip_per_hour: int = Field(default=10, ge=1)
    rate_limit_webhook_auth_failures_per_ip_per_hour: int = Field(default=30, ge=1)
    rate_limit_flower_auth_failures_per_ip_per_hour: int = Field(default=10, ge=1)

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
        if self.status_url_window_s + self.status_url_expiry_s > MAX_PRESIGN_S:
            raise ValueError("STATUS_URL_WINDOW_S + STATUS_URL_EXPIRY_S must not exceed 7 days")
        base = self.thumbnails_public_base_url
        if base and (not base.startswith(("http://", "https://")) or base.endswith("/")):
            raise ValueError(
                "THUMBNAILS_PUBLIC_BASE_URL must be an http(s) URL without a trailing slash"
            )
        return self

    thumbnails_prefix: str = "thumbnails/"
    thumbnail_count: int = Field(default=5, ge=1, le=100)
    thumbnail_width_px: int = Field(default=320, ge=16, le=3840)
    # Frames larger than this are refused at validation: decoding one costs its size in memory.
    max_video_pixels: int = Field(default=DEFAULT_MAX_VIDEO_PIXELS, ge=64 * 64)

    # -- media fast path: thumbnails, bounded range reads, storyboard --
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

    # -- ingestion rules and the bucket poller --

    ingest_key_prefix: str = ""
    # Buckets whose notifications are processed; empty means S3_BUCKET alone (``served_buckets``).
    ingest_buckets: Annotated[tuple[str, ...], NoDecode] = ()
    ingest_extensions: Annotated[tuple[str, ...], NoDecode] = DEFAULT_INGEST_EXTENSIONS
    ingest_min_size_bytes: int = Field(default=0, ge=0)
    ingest_max_size_bytes: int = Field(default=DEFAULT_INGEST_MAX_SIZE_BYTES, ge=1)
    poll_interval_s: float = Field(default=DEFAULT_POLL_INTERVAL_S, gt=0)
    poll_lookback_s: int = Field(default=DEFAULT_POLL_LOOKBACK_S, ge=0)

    @field_validator("ingest_buckets", mode="before")
    @classmethod
    def _split_buckets(cls, value: object) -> object:
        """``INGEST_BUCKETS=uploads,archive`` → ``("uploads", "archive")``."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("ingest_buckets", "s3_bucket")
    @classmethod
    def _check_bucket_names(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        """Refuse a name no store accepts, at start-up rather than at the first event."""
        for name in (value,) if isinstance(value, str) else value:
            problem = bucket_name_problem(name)
            if problem is not None:
                raise ValueError(f"{name!r} is not a bucket name: {problem}")
        return value

    @property
    def served_buckets(self) -> tuple[str, ...]:
        """The buckets events may name: ``INGEST_BUCKETS``, or ``S3_BUCKET`` alone."""
        return self.ingest_buckets or (self.s3_bucket,)

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
    broker_publish_retry_s: float = Field(default=DEFAULT_BROKER_PUBLISH_RETRY_S, ge=0)
    worker_max_memory_per_child_kib: int = Field(
        default=DEFAULT_WORKER_MAX_MEMORY_PER_CHILD_KIB, ge=0
    )
    broker_delivery_limit: int = Field(default=DEFAULT_BROKER_DELIVERY_LIMIT, ge=1)
    # Redis only: send each chain step with its lane's priority (``schema.lanes``); false sends
    # every step without one, first in first out, as before lanes existed.
    queue_priorities: bool = True

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
    pull_backoff_max_s: float = Field(default=DEFAULT_PULL_BACKOFF_MAX_S, gt=0)
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

    # -- operations: Flower, metrics, completion webhook, admin, recovery --

    # flower, metrics, notifications
    flower_basic_auth: SecretStr | None = None
    flower_url: str | None = None
    metrics_window_s: int = Field(default=3600, ge=1)
    # /metrics on the producer's API: off, or behind basic auth (user:password[,user2:password2]).
    metrics_on_api: bool = True
    metrics_basic_auth: SecretStr | None = None
    completion_webhook_url: str | None = None
    completion_webhook_secret: SecretStr | None = None
    completion_webhook_expiry_s: int = Field(default=86_400, ge=1)
    completion_webhook_timeout_s: float = Field(default=10.0, gt=0)
    # D1 write-back: mirror task and videos rows into a Cloudflare app's D1 (workers/mirror.py).
    d1_account_id: str = ""
    d1_database_id: str = ""
    d1_api_token: SecretStr = SecretStr("")
    d1_api_base_url: str = DEFAULT_CF_API_BASE_URL
    d1_timeout_s: float = Field(default=30.0, gt=0)
    d1_batch_statements: int = Field(default=50, ge=1, le=MAX_D1_BATCH_STATEMENTS)
    d1_mirror_expiry_s: int = Field(default=86_400, ge=1)

    @field_validator(
        "flower_basic_auth",
        "metrics_basic_auth",
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
        """Refuse malformed Flower or metrics credentials and an unsigned or non-HTTP webhook."""
        for name, value in (
            ("FLOWER_BASIC_AUTH", self.flower_basic_auth),
            ("METRICS_BASIC_AUTH", self.metrics_basic_auth),
        ):
            if value is None:
                continue
            pairs = [p.partition(":") for p in value.get_secret_value().split(",")]
            if not all(user and password for user, _, password in pairs):
                raise ValueError(f"{name} must be user:password[,user2:password2]")
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
    recovery_max_attempts: int = Field(default=DEFAULT_RECOVERY_MAX_ATTEMPTS, ge=0, le=100)
    recovery_interval_s: float = Field(default=DEFAULT_RECOVERY_INTERVAL_S, gt=0)
    # Multipart uploads no videos row knows are aborted once this old (``producer.ops.orphans``).
    recovery_orphan_multipart_after_s: int = Field(default=86_400, ge=0)
    recovery_unacked_grace_s: float = Field(default=DEFAULT_RECOVERY_UNACKED_GRACE_S, ge=0)
    recovery_inspect_timeout_s: float = Field(default=DEFAULT_RECOVERY_INSPECT_TIMEOUT_S, gt=0)

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

    @model_validator(mode="after")
    def _check_d1(self) -> Self:
        """The D1 write-back needs its account, database and token together, or none of them."""
        given = {
            "D1_ACCOUNT_ID": self.d1_account_id,
            "D1_DATABASE_ID": self.d1_database_id,
            "D1_API_TOKEN": self.d1_api_token.get_secret_value(),
        }
        missing = [name for name, value in given.items() if not value]
        if missing and len(missing) < len(given):
            raise ValueError(f"the D1 write-back also needs {', '.join(missing)}")
        return self

    @property
    def d1_enabled(self) -> bool:
        """Whether task and video rows are mirrored into a Cloudflare D1 database."""
        return bool(self.d1_account_id)

    @property
    def webhook_auth_configured(self) -> bool:
        """Whether any webhook authentication method is set (development may run without)."""
        return bool(
            self.webhook_token.get_secret_value()
            or self.webhook_hmac_secret.get_secret_value()
            or self.webhook_access_client_secret.get_secret_value()
        )
