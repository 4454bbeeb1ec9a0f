"""The upload API's rate limits, kept in Redis by the ``limits`` library.

Four limits, each a sliding-window counter (Redis, one Lua script per hit, so a refused request
consumes nothing):

- upload starts (``/api/upload-url`` and ``POST /api/multipart``) per user per minute,
- the same per client IP per minute,
- declared upload bytes per user per day,
- authentication failures per client IP per hour (stricter: once over it, the IP gets 429
  before its token is even looked at).

A refusal is a 429 with ``Retry-After``; if Redis cannot be reached the API answers 503 rather
than run unlimited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlparse, urlunparse

from fastapi import Request
from limits import (
    RateLimitItem,
    RateLimitItemPerDay,
    RateLimitItemPerHour,
    RateLimitItemPerMinute,
)
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from producer.web.errors import ApiError
from schema.broker import BrokerKind, broker_kind
from schema.settings import DEFAULT_BROKER_URL, Settings

# Without RATE_LIMIT_REDIS_URL the limits live in BROKER_URL's Redis, in this database number,
# apart from Celery's queues (database 0 by default; 1 is left for a result backend).
DEFAULT_RATE_LIMIT_DB = 2
REDIS_TIMEOUT_S = 2.0


def rate_limit_redis_url(settings: Settings) -> str:
    """``RATE_LIMIT_REDIS_URL``, or the broker's Redis with database ``DEFAULT_RATE_LIMIT_DB``.

    With a RabbitMQ broker the default Redis (``DEFAULT_BROKER_URL``'s host) is used instead.
    """
    if settings.rate_limit_redis_url:
        return settings.rate_limit_redis_url
    redis_broker = broker_kind(settings.broker_url) is BrokerKind.REDIS
    parts = urlparse(settings.broker_url if redis_broker else DEFAULT_BROKER_URL)
    return urlunparse(parts._replace(path=f"/{DEFAULT_RATE_LIMIT_DB}"))


def client_ip(request: Request, settings: Settings) -> str:
    """The caller's address: the configured header (e.g. ``CF-Connecting-IP``) or the peer's.

    Trust the header only when Cloudflare is the only way to reach the origin (a Tunnel), since
    anyone else can send it.
    """
    if settings.rate_limit_client_ip_header:
        value = request.headers.get(settings.rate_limit_client_ip_header, "").strip()
        if value:
            return value.split(",", 1)[0].strip()
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True, slots=True)
class _Limit:
    item: RateLimitItem
    what: str


class UploadLimits:
    """The four limits of the upload API over one Redis connection pool."""

    def __init__(self, settings: Settings) -> None:
        self._storage = RedisStorage(
            rate_limit_redis_url(settings),
            key_prefix=settings.rate_limit_key_prefix,
            wrap_exceptions=True,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._per_user = _Limit(
            RateLimitItemPerMinute(
                settings.rate_limit_upload_urls_per_user_per_minute, namespace="uploads-user"
            ),
            "upload starts per user per minute",
        )
        self._per_ip = _Limit(
            RateLimitItemPerMinute(
                settings.rate_limit_upload_urls_per_ip_per_minute, namespace="uploads-ip"
            ),
            "upload starts per IP per minute",
        )
        self._bytes = _Limit(
            RateLimitItemPerDay(
                settings.rate_limit_upload_bytes_per_user_per_day, namespace="bytes-user"
            ),
            "upload bytes per user per day",
        )
        self._auth_failures = _Limit(
            RateLimitItemPerHour(
                settings.rate_limit_auth_failures_per_ip_per_hour, namespace="auth-fail-ip"
            ),
            "authentication failures per IP per hour",
        )

    def start_upload(self, *, user_id: str, ip: str, size_bytes: int) -> None:
        """Count one upload start of ``size_bytes`` declared bytes, or refuse it.

        All three limits are tested before any is consumed, so a refusal costs nothing.

        Raises:
            ApiError: 429 with ``Retry-After`` when a limit is reached; 503 without Redis.
        """
        hits = [
            (self._per_user, user_id, 1),
            (self._per_ip, ip, 1),
            (self._bytes, user_id, size_bytes),
        ]
        with _redis():
            for limit, key, cost in hits:
                if not self._limiter.test(limit.item, key, cost=cost):
                    raise self._refusal(limit, key)
            for limit, key, cost in hits:
                if not self._limiter.hit(limit.item, key, cost=cost):
                    raise self._refusal(limit, key)

    def check_auth_failures(self, ip: str) -> None:
        """Refuse an IP that failed authentication too often, before verifying anything.

        Raises:
            ApiError: 429 with ``Retry-After``; 503 without Redis.
        """
        with _redis():
            if not self._limiter.test(self._auth_failures.item, ip):
                raise self._refusal(self._auth_failures, ip)

    def count_auth_failure(self, ip: str) -> None:
        """Remember one failed authentication from ``ip`` (a full window stays full)."""
        with _redis():
            self._limiter.hit(self._auth_failures.item, ip)

    def close(self) -> None:
        """Release the Redis connections."""
        self._storage.storage.close()

    def _refusal(self, limit: _Limit, key: str) -> ApiError:
        stats = self._limiter.get_window_stats(limit.item, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        return ApiError(
            429,
            "rate_limited",
            f"Too many requests: the limit of {limit.item.amount} {limit.what} is reached; "
            f"retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


@contextmanager
def _redis() -> Iterator[None]:
    """Turn an unreachable Redis into a 503 instead of an unlimited API."""
    try:
        yield
    except StorageError as exc:
        raise ApiError(
            503, "rate_limiter_unavailable", "The rate limiter's Redis is unreachable"
        ) from exc
