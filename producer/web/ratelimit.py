"""Rate limits, kept in Redis by the ``limits`` library: the upload API's, and failed logins.

The upload API has four limits, each a sliding-window counter (Redis, one Lua script per hit,
so a refused request consumes nothing):

- upload starts (``/api/upload-url`` and ``POST /api/multipart``) per user per minute,
- the same per client IP per minute,
- declared upload bytes per user per day,
- authentication failures per client IP per hour.

Every other door that checks credentials has a ``LoginThrottle`` of its own, counted apart:
the admin API and page, ``/metrics``, the webhook, and Flower (``producer.ops.flower_login``). A
throttle is stricter than a limit: once an IP is over it, it gets 429 before its credentials
are even looked at, so a right guess among wrong ones is refused too.

A refusal is a 429 with ``Retry-After``; if Redis cannot be reached the caller answers 503
rather than run unlimited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

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
from schema.changes import rate_limit_redis_url
from schema.settings import Settings

REDIS_TIMEOUT_S = 2.0


def client_ip(request: Request, settings: Settings) -> str:
    """The caller's address: the configured header (e.g. ``CF-Connecting-IP``) or the peer's.

    Trust the header only when Cloudflare is the only way to reach the origin (a Tunnel), since
    anyone else can send it.
    """
    return client_ip_of(request.headers, request.client.host if request.client else None, settings)


def client_ip_of(headers: Mapping[str, str], peer: str | None, settings: Settings) -> str:
    """``client_ip`` for any framework: its request headers and the peer's address."""
    if settings.rate_limit_client_ip_header:
        value = headers.get(settings.rate_limit_client_ip_header, "").strip()
        if value:
            return value.split(",", 1)[0].strip()
    return peer or "unknown"


def limits_storage(settings: Settings) -> RedisStorage:
    """The Redis the limits live in (see ``rate_limit_redis_url``); unreachable is an error."""
    return RedisStorage(
        rate_limit_redis_url(settings),
        key_prefix=settings.rate_limit_key_prefix,
        wrap_exceptions=True,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )


@dataclass(frozen=True, slots=True)
class _Limit:
    item: RateLimitItem
    what: str


class LoginThrottle:
    """Failed logins per client IP at one door; over the limit, the IP is refused outright."""

    def __init__(self, storage: RedisStorage, *, per_hour: int, door: str) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._limit = _Limit(
            RateLimitItemPerHour(per_hour, namespace=f"{door}-auth-fail-ip"),
            f"failed logins per IP per hour ({door})",
        )

    def check(self, ip: str) -> None:
        """Refuse an IP that failed too often, before its credentials are verified.

        Raises:
            ApiError: 429 with ``Retry-After``; 503 without Redis.
        """
        with _redis():
            if not self._limiter.test(self._limit.item, ip):
                raise _refusal(self._limiter, self._limit, ip)

    def count_failure(self, ip: str) -> None:
        """Remember one failed login from ``ip`` (a full window stays full).

        Raises:
            ApiError: 503 without Redis.
        """
        with _redis():
            self._limiter.hit(self._limit.item, ip)


@dataclass(frozen=True, slots=True)
class Logins:
    """The throttles of the app's own doors (the upload API keeps its own in ``UploadLimits``)."""

    admin: LoginThrottle
    metrics: LoginThrottle
    webhook: LoginThrottle
    storage: RedisStorage

    @classmethod
    def open(cls, settings: Settings) -> Logins:
        """One Redis connection pool for all; nothing is connected before the first check."""
        storage = limits_storage(settings)
        admin_per_hour = settings.rate_limit_admin_auth_failures_per_ip_per_hour
        return cls(
            admin=LoginThrottle(storage, per_hour=admin_per_hour, door="admin"),
            # an operator's scraper: the admin's limit, counted apart
            metrics=LoginThrottle(storage, per_hour=admin_per_hour, door="metrics"),
            webhook=LoginThrottle(
                storage,
                per_hour=settings.rate_limit_webhook_auth_failures_per_ip_per_hour,
                door="webhook",
            ),
            storage=storage,
        )

    def close(self) -> None:
        """Release the Redis connections."""
        self.storage.storage.close()


class UploadLimits:
    """The four limits of the upload API over one Redis connection pool."""

    def __init__(self, settings: Settings) -> None:
        self._storage = limits_storage(settings)
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
        self._logins = LoginThrottle(
            self._storage, per_hour=settings.rate_limit_auth_failures_per_ip_per_hour, door="upload"
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
                    raise _refusal(self._limiter, limit, key)
            for limit, key, cost in hits:
                if not self._limiter.hit(limit.item, key, cost=cost):
                    raise _refusal(self._limiter, limit, key)

    def check_auth_failures(self, ip: str) -> None:
        """Refuse an IP that failed authentication too often, before verifying anything.

        Raises:
            ApiError: 429 with ``Retry-After``; 503 without Redis.
        """
        self._logins.check(ip)

    def count_auth_failure(self, ip: str) -> None:
        """Remember one failed authentication from ``ip`` (a full window stays full)."""
        self._logins.count_failure(ip)

    def close(self) -> None:
        """Release the Redis connections."""
        self._storage.storage.close()


def _refusal(limiter: SlidingWindowCounterRateLimiter, limit: _Limit, key: str) -> ApiError:
    stats = limiter.get_window_stats(limit.item, key)
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
