"""The status micro-cache: a crowd polling one video costs one database read per freshness window.

An entry is the status response as sent (JSON bytes and their ETag) and lives in Redis (the
rate limits' Redis) under ``videofleet-status:{video id}:{owner digest}``. The owner is part of
the key: another user's lookup can never hit the entry; it misses, reads the database and gets
its 404 there. Errors are never cached, so a video created a moment ago shows at once.

Freshness follows the state: ``STATUS_FRESH_S`` while the video is uploading or processing (its
task moves on every few seconds), ``STATUS_FINAL_FRESH_S`` once it is ready, failed or deleted.
Writers mark a change (``schema.changes``: a step starting, completing or failing, a requeue) by
bumping the generation of the video's key; an entry remembers the generation it was read at and
is refreshed as soon as that moves, so a change shows at the next poll. The freshness window stays
the bound for what marks miss (Redis down while a writer marked, or a mark landing between an
entry's database read and its generation read).

When an entry goes stale, the first request to see it takes a refresh lock (``SET NX``) and reads
the database; the others keep getting the stale entry for the moment that read takes (at most
``STALE_GRACE_S``), so expiry never turns into a stampede of identical reads.

Redis being down or slow costs the cache, never the answer: lookups then read the database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import redis

from schema.changes import generation_key, rate_limit_redis_url
from schema.settings import Settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "videofleet-status"
STALE_GRACE_S = 5
REDIS_TIMEOUT_S = 0.5
FINAL_STATUSES = frozenset({"ready", "failed", "deleted"})


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """A status response as sent: its JSON body, the body's ETag, and until when it is fresh."""

    body: bytes
    etag: str
    fresh_until: float  # epoch seconds
    video_key: str
    generation: int = 0

    @classmethod
    def of(cls, body: bytes, *, status: str, video_key: str, settings: Settings) -> StatusEntry:
        """The entry of ``body`` read now; its ETag is a digest of the bytes."""
        digest = hashlib.sha256(body).hexdigest()[:32]
        final = status in FINAL_STATUSES
        fresh_s = settings.status_final_fresh_s if final else settings.status_fresh_s
        return cls(body, f'"{digest}"', time.time() + fresh_s, video_key)

    @property
    def max_age_s(self) -> int:
        """What is left of its freshness: a browser may keep it that long, not longer."""
        return max(0, math.ceil(self.fresh_until - time.time()))


class StatusCache:
    """Status entries in Redis, refreshed by one request per video and owner at a time."""

    def __init__(self, settings: Settings) -> None:
        self._redis = redis.Redis.from_url(
            rate_limit_redis_url(settings),
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )

    def close(self) -> None:
        """Release the connection pool."""
        self._redis.close()

    def lookup(self, video_id: str, owner: str, load: Callable[[], StatusEntry]) -> StatusEntry:
        """The cached entry while fresh (or while another request refreshes it), else ``load()``.

        ``load`` raises for an unknown or someone else's video; nothing is cached then.
        """
        key = _key(video_id, owner)
        generation: int | None = None
        try:
            raw = cast(bytes | None, self._redis.get(key))  # the sync client's answer
            if raw is not None:
                stored = json.loads(raw)
                entry = StatusEntry(
                    stored["body"].encode(),
                    stored["etag"],
                    stored["fresh_until"],
                    stored["video_key"],
                    stored["generation"],
                )
                generation = self._generation(entry.video_key)
                fresh = generation == entry.generation and time.time() < entry.fresh_until
                if fresh or not self._claim_refresh(key):
                    return entry
        except (redis.RedisError, KeyError, ValueError) as exc:
            logger.warning(
                "Video %s: status cache unavailable, reading the database: %s", video_id, exc
            )
            return load()
        entry = load()
        self._store(key, entry, generation)
        return entry

    def _generation(self, video_key: str) -> int:
        return int(cast(bytes | None, self._redis.get(generation_key(video_key))) or 0)

    def _claim_refresh(self, key: str) -> bool:
        return bool(self._redis.set(f"{key}:refresh", b"1", nx=True, ex=STALE_GRACE_S))

    def _store(self, key: str, entry: StatusEntry, generation: int | None) -> None:
        """Keep ``entry`` with the generation read before its rows (else read now, after them:
        a mark landing in between is then caught only by the freshness window)."""
        try:
            if generation is None:
                generation = self._generation(entry.video_key)
            value = {
                "body": entry.body.decode(),
                "etag": entry.etag,
                "fresh_until": entry.fresh_until,
                "video_key": entry.video_key,
                "generation": generation,
            }
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(key, json.dumps(value), ex=entry.max_age_s + STALE_GRACE_S)
                pipe.delete(f"{key}:refresh")
                pipe.execute()
        except redis.RedisError as exc:
            logger.warning("Status cache: could not store %s: %s", key, exc)


def _key(video_id: str, owner: str) -> str:
    """The entry's key; the owner is hashed so any user id fits in a key."""
    owner_digest = hashlib.sha256(owner.encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}:{video_id}:{owner_digest}"
