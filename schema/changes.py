"""Change marks: whoever changes what a video's status shows bumps its generation in Redis.

The status micro-cache (``producer.web.status_cache``) keeps answers for a few seconds; an entry
remembers the generation of its video's key when it was read, and is dropped as soon as the
generation moves. Workers (a step starts, completes, fails) and the producer (a requeue) mark
the key after their transaction commits, so a poller sees a change at its next request rather
than when the entry expires. Marks live in the rate limits' Redis, next to the cache.

A mark is bookkeeping: Redis being down costs the early invalidation (entries then expire on
their own freshness), never the write that made the change.
"""

from __future__ import annotations

import logging
from urllib.parse import urlparse, urlunparse

import redis

from schema.broker import BrokerKind, broker_kind
from schema.settings import DEFAULT_BROKER_URL, Settings

logger = logging.getLogger(__name__)

GENERATION_PREFIX = "videofleet-status-gen"
# Without RATE_LIMIT_REDIS_URL the limits, the status cache and the change marks live in
# BROKER_URL's Redis, in this database number, apart from Celery's queues (database 0 by
# default; 1 is left for a result backend).
DEFAULT_RATE_LIMIT_DB = 2
REDIS_TIMEOUT_S = 0.5
# A generation outlives any cache entry by far; it is dropped with the video's last change.
GENERATION_TTL_S = 7 * 24 * 3600


def rate_limit_redis_url(settings: Settings) -> str:
    """``RATE_LIMIT_REDIS_URL``, or the broker's Redis with database ``DEFAULT_RATE_LIMIT_DB``.

    With a RabbitMQ broker the default Redis (``DEFAULT_BROKER_URL``'s host) is used instead.
    """
    if settings.rate_limit_redis_url:
        return settings.rate_limit_redis_url
    redis_broker = broker_kind(settings.broker_url) is BrokerKind.REDIS
    parts = urlparse(settings.broker_url if redis_broker else DEFAULT_BROKER_URL)
    return urlunparse(parts._replace(path=f"/{DEFAULT_RATE_LIMIT_DB}"))


def generation_key(video_key: str) -> str:
    """The Redis key of the generation of the video stored under ``video_key``."""
    return f"{GENERATION_PREFIX}:{video_key}"


class ChangeMarks:
    """Bumps generations; connects on first use and never raises."""

    def __init__(self, settings: Settings) -> None:
        self._url = rate_limit_redis_url(settings)
        self._client: redis.Redis | None = None

    def mark(self, video_key: str) -> None:
        """Record that what ``video_key``'s status shows has changed."""
        try:
            if self._client is None:
                self._client = redis.Redis.from_url(
                    self._url,
                    socket_timeout=REDIS_TIMEOUT_S,
                    socket_connect_timeout=REDIS_TIMEOUT_S,
                )
            with self._client.pipeline(transaction=False) as pipe:
                pipe.incr(generation_key(video_key))
                pipe.expire(generation_key(video_key), GENERATION_TTL_S)
                pipe.execute()
        except redis.RedisError as exc:
            logger.warning(
                "Video %s: change mark not written (caches expire alone): %s", video_key, exc
            )

    def close(self) -> None:
        """Release the connection."""
        if self._client is not None:
            self._client.close()
            self._client = None
