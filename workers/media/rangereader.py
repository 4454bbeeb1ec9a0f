"""A seekable, read-only file over bounded HTTP range requests, with a small shared cache.

ffmpeg's own HTTP reader asks for open-ended ranges (``bytes=N-``): the server keeps sending
until the client hangs up, so a seek-heavy read is billed for far more than it consumed. Here a
``RangeSource`` asks only for ``bytes=N-M`` and keeps what it fetched in a bounded cache; each
``RangeReader`` is one cursor over it (one per PyAV container), growing its next request only
while its reads stay sequential (an index, a large keyframe). Cursors share the cache, so a
second container opened on the same object finds the index already fetched. Every byte the
decoders see was requested on purpose, and ``requests``/``bytes_read`` say exactly what the
storage endpoint sent.

Every range request is retried on its own (``StorageRetry``): S3's ``503 SlowDown``, other 5xx,
429, resets and timeouts are waited out with exponential backoff and full jitter, honouring
``Retry-After``, within the step's deadline. Only then does the step see ``StorageUnavailable``
(and Celery retries the step): one throttled request out of the dozens a step makes must not
cost the whole step.
"""

from __future__ import annotations

import io
import logging
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError
from urllib3.util.retry import Retry

from schema.errors import ObjectMissing, StorageUnavailable
from schema.settings import DEFAULT_S3_MAX_ATTEMPTS

logger = logging.getLogger(__name__)

DEFAULT_BLOCK_BYTES = 128 * 1024
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEFAULT_CACHE_BYTES = 8 * 1024 * 1024
# Worth another request at once: throttling and server errors. 403 (an expired presigned URL)
# is not: the same URL fails the same way; a step retry presigns a new one.
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT_STATUSES = _RETRY_STATUSES | {403}
RETRY_BACKOFF_BASE_S = 0.2
RETRY_BACKOFF_MAX_S = 5.0
RETRY_AFTER_MAX_S = 10


class StorageRetry(Retry):
    """urllib3's retry with full-jitter exponential backoff that gives up at a deadline.

    The n-th retry waits a random time in ``[0, min(RETRY_BACKOFF_MAX_S, base * 2**n)]`` (AWS's
    "full jitter", as botocore's standard mode does; urllib3's own backoff retries the first
    failure at once). A ``Retry-After`` is honoured up to ``RETRY_AFTER_MAX_S``. ``deadline`` (a
    ``time.monotonic()`` value) ends the retries however many are left.
    """

    def __init__(self, *args: Any, deadline: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    @classmethod
    def for_attempts(cls, attempts: int, *, deadline: float | None) -> StorageRetry:
        """``attempts`` requests at most (the first one and ``attempts - 1`` retries)."""
        return cls(
            total=max(0, attempts - 1),
            status_forcelist=_RETRY_STATUSES,
            backoff_factor=RETRY_BACKOFF_BASE_S,
            backoff_max=RETRY_BACKOFF_MAX_S,
            retry_after_max=RETRY_AFTER_MAX_S,
            raise_on_status=False,
            raise_on_redirect=False,
            redirect=0,
            deadline=deadline,
        )

    def new(self, **kw: Any) -> StorageRetry:
        kw.setdefault("deadline", self.deadline)
        return super().new(**kw)

    def get_backoff_time(self) -> float:
        ceiling = min(self.backoff_max, self.backoff_factor * 2 ** len(self.history))
        return random.uniform(0, ceiling)  # noqa: S311  (jitter, not a secret)

    def is_exhausted(self) -> bool:
        past = self.deadline is not None and time.monotonic() >= self.deadline
        return past or super().is_exhausted()


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """How a reader may fetch: request sizes, cache, timeouts, attempts per request."""

    block_bytes: int
    max_request_bytes: int
    cache_bytes: int
    timeout_s: float
    max_attempts: int = DEFAULT_S3_MAX_ATTEMPTS

    def source(
        self,
        url: str,
        *,
        video_key: str,
        pool: urllib3.PoolManager,
        deadline: float | None = None,
    ) -> RangeSource:
        """A ``RangeSource`` over ``url`` within these limits."""
        return RangeSource(
            url,
            video_key=video_key,
            pool=pool,
            block_bytes=self.block_bytes,
            max_request_bytes=self.max_request_bytes,
            cache_bytes=self.cache_bytes,
            timeout_s=self.timeout_s,
            deadline=deadline,
            max_attempts=self.max_attempts,
        )


class RangeSource:
    """The object behind ``url`` (a presigned GET URL): bounded range GETs and their cache.

    Memory is bounded by ``cache_bytes`` whatever the object's size. ``deadline`` (a
    ``time.monotonic()`` value) stops a read, and its retries, past the step's budget, and
    ``cancel`` stops every cursor at its next fetch (a sibling failed, or the step was
    interrupted).
    Thread-safe: cursors in several threads share one source.
    """

    def __init__(
        self,
        url: str,
        *,
        video_key: str,
        pool: urllib3.PoolManager,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        timeout_s: float = 30.0,
        deadline: float | None = None,
        max_attempts: int = DEFAULT_S3_MAX_ATTEMPTS,
    ) -> None:
        self.url = url
        self.video_key = video_key
        self._pool = pool
        self.block_bytes = block_bytes
        self.max_request_bytes = max(max_request_bytes, block_bytes)
        self._cache_bytes = max(cache_bytes, 2 * self.max_request_bytes)
        self._timeout = urllib3.Timeout(connect=min(timeout_s, 10.0), read=timeout_s)
        self._deadline = deadline
        self._max_attempts = max_attempts
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self.size: int | None = None
        self.requests = 0
        self.bytes_read = 0

    def cursor(self) -> RangeReader:
        """A new file-like cursor at offset 0."""
        return RangeReader(self)

    def cancel(self) -> None:
        """Make every cursor's next fetch fail (the step is being abandoned)."""
        self._cancelled.set()

    def total_size(self) -> int:
        """The object's size, learnt from the first response's ``Content-Range``."""
        if self.size is None:
            self.fetch(0, self.block_bytes)
        assert self.size is not None
        return self.size

    def cached(self, pos: int, limit: int) -> bytes:
        """Up to ``limit`` cached bytes at ``pos`` (empty on a miss)."""
        with self._lock:
            for start, data in reversed(self._cache.items()):
                if start <= pos < start + len(data):
                    self._cache.move_to_end(start)
                    return data[pos - start : pos - start + limit]
        return b""

    def fetch(self, pos: int, length: int) -> bytes:
        """GET ``length`` bytes from ``pos`` (fewer at the end or before cached bytes)."""
        if self._cancelled.is_set():
            raise StorageUnavailable(
                f"reading {self.video_key} was abandoned", video_key=self.video_key
            )
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise StorageUnavailable(
                f"reading {self.video_key} ran past the step's time budget",
                video_key=self.video_key,
            )
        end = pos + length - 1
        with self._lock:
            if self.size is not None:
                end = min(end, self.size - 1)
            # Stop where cached bytes begin: nothing is fetched twice while it is cached.
            following = [start for start in self._cache if start > pos]
        if following:
            end = min(end, min(following) - 1)
        data = self._get(pos, end)
        with self._lock:
            old = self._cache.pop(pos, b"")
            self._cache[pos] = data
            self._cached_bytes += len(data) - len(old)
            while self._cached_bytes > self._cache_bytes and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                self._cached_bytes -= len(evicted)
        return data

    def _get(self, start: int, end: int) -> bytes:
        key = self.video_key
        try:
            response = self._pool.request(
                "GET",
                self.url,
                headers={"Range": f"bytes={start}-{end}"},
                timeout=self._timeout,
                retries=StorageRetry.for_attempts(self._max_attempts, deadline=self._deadline),
                preload_content=True,
            )
        except HTTPError as exc:
            raise StorageUnavailable(
                f"reading {key} failed: {exc.__class__.__name__}", video_key=key
            ) from exc
        data = bytes(response.data)
        retried = response.retries.history if response.retries is not None else ()
        with self._lock:
            self.requests += 1 + len(retried)
            self.bytes_read += len(data)
        if response.status == 404:
            raise ObjectMissing(f"object {key} disappeared while being read", video_key=key)
        if response.status == 416:
            return b""
        if response.status in _TRANSIENT_STATUSES or response.status not in (200, 206):
            raise StorageUnavailable(f"reading {key} failed: HTTP {response.status}", video_key=key)
        if response.status == 200:
            # A server that ignores Range sends everything: keep only the asked-for part.
            self.size = len(data)
            return data[start : end + 1]
        self.size = _total_size(response.headers.get("Content-Range"), self.size)
        return data


class RangeReader(io.RawIOBase):
    """One seekable cursor over a ``RangeSource``: what PyAV reads through."""

    def __init__(self, source: RangeSource) -> None:
        super().__init__()
        self._source = source
        self._pos = 0
        self._next_sequential = -1
        self._run_bytes = source.block_bytes

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        elif whence == io.SEEK_END:
            self._pos = self._source.total_size() + offset
        else:
            raise ValueError(f"unsupported whence {whence}")
        if self._pos < 0:
            raise ValueError("negative seek position")
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Copy up to ``len(buffer)`` bytes from the current position, fetching on a miss."""
        view = memoryview(buffer).cast("B")
        copied = 0
        size = self._source.size
        while copied < len(view):
            if size is not None and self._pos >= size:
                break
            chunk = self._source.cached(self._pos, len(view) - copied)
            if not chunk:
                chunk = self._fetch()[: len(view) - copied]
                if not chunk:
                    break
                size = self._source.size
            view[copied : copied + len(chunk)] = chunk
            copied += len(chunk)
            self._pos += len(chunk)
        return copied

    def _fetch(self) -> bytes:
        """One block after a jump, a doubling run while reads are sequential.

        Requests start exactly where the demuxer reads (not at an aligned block), so a keyframe
        smaller than a block costs one request.
        """
        if self._pos == self._next_sequential:
            self._run_bytes = min(self._run_bytes * 2, self._source.max_request_bytes)
        else:
            self._run_bytes = self._source.block_bytes
        data = self._source.fetch(self._pos, self._run_bytes)
        self._next_sequential = self._pos + len(data)
        return data


def _total_size(content_range: str | None, known: int | None) -> int | None:
    """The ``/total`` part of ``Content-Range: bytes a-b/total``."""
    if not content_range or "/" not in content_range:
        return known
    total = content_range.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else known
