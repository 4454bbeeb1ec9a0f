"""A seekable, read-only file over bounded HTTP range requests, with a small shared cache.

ffmpeg's own HTTP reader asks for open-ended ranges (``bytes=N-``): the server keeps sending
until the client hangs up, so a seek-heavy read is billed for far more than it consumed. Here a
``RangeSource`` asks only for ``bytes=N-M`` and keeps what it fetched in a bounded cache; each
``RangeReader`` is one cursor over it (one per PyAV container): after a jump it asks for what it
was told to expect there (a keyframe's size, an index's extent), else a block, and grows its
next request only while its reads stay sequential. Cursors share the cache, so a second
container opened on the same object finds the index already fetched. Every byte the
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
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from schema.errors import ObjectMissing, StorageUnavailable, Superseded
from schema.message import normal_etag
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
        etag: str | None = None,
    ) -> RangeSource:
        """A ``RangeSource`` over ``url`` within these limits."""
        return RangeSource(
            url,
            video_key=video_key,
            pool=pool,
            etag=etag,
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

    Every response names the version it came from (its ``ETag``): the first one fixes it (or
    ``etag``, the version the task was created for, does), and a response from any other version
    raises ``Superseded``, so a step never mixes two versions' bytes and needs no HEAD to know
    which version it reads. The first response also tells the size (``total_size``).
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
        etag: str | None = None,
    ) -> None:
        self.url = url
        # The version read: the task's if it named one, else the first response's.
        self.etag: str | None = normal_etag(etag) if etag else None
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
                f"storage error reading {key}: {_why(exc)}", video_key=key
            ) from exc
        data = bytes(response.data)
        retried = response.retries.history if response.retries is not None else ()
        with self._lock:
            self.requests += 1 + len(retried)
            self.bytes_read += len(data)
        if response.status == 404:
            what = "does not exist" if self.size is None else "disappeared while being read"
            raise ObjectMissing(f"object {key} {what}", video_key=key)
        if response.status == 416:
            # Nothing at ``start``: past the end, or (from 0) an empty object.
            total = _total_size(response.headers.get("Content-Range"), None)
            self.size = total if total is not None else (0 if start == 0 else self.size)
            return b""
        if response.status in _TRANSIENT_STATUSES or response.status not in (200, 206):
            raise StorageUnavailable(
                f"storage error reading {key}: HTTP {response.status}", video_key=key
            )
        self._check_version(response.headers.get("ETag"))
        if response.status == 200:
            # A server that ignores Range sends everything: keep only the asked-for part.
            self.size = len(data)
            return data[start : end + 1]
        self.size = _total_size(response.headers.get("Content-Range"), self.size)
        return data

    def _check_version(self, header: str | None) -> None:
        """Fix the version on the first response; refuse bytes of any other version.

        An overwritten key's older notification can arrive late, a made-up eTag names no
        version at all, and a key can be overwritten between two range requests: either way
        the bytes belong to another task.
        """
        found = normal_etag(header or "")
        if not found:
            return
        with self._lock:
            if self.etag is None:
                self.etag = found
            if found == self.etag:
                return
        raise Superseded(
            f"superseded: {self.video_key} now holds another version (ETag {found}, this task"
            f" was for {self.etag}); that version is processed by its own task",
            video_key=self.video_key,
        )


class RangeReader(io.RawIOBase):
    """One seekable cursor over a ``RangeSource``: what PyAV reads through.

    Reads are short: a read returns the cached bytes at the position and fetches only when there
    are none, so the demuxer's buffer fills never pull in bytes it did not reach. The first
    request after a jump asks for what the reader was told to ``expect`` there (a keyframe the
    index or earlier keyframes measured), else a block; a request while reads stay sequential
    (an index, a large keyframe) doubles the previous one. Either way a direct read larger than
    that is fetched whole.
    """

    def __init__(self, source: RangeSource) -> None:
        super().__init__()
        self._source = source
        self._pos = 0
        self._next_sequential = -1
        self._run_bytes = source.block_bytes
        self._expected: int | None = None
        self._ahead: tuple[int, int] | None = None
        self._read_end = -1
        self.jump_pos = 0

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

    @property
    def max_request_bytes(self) -> int:
        """The most one request asks for."""
        return self._source.max_request_bytes

    @property
    def block_bytes(self) -> int:
        """What the first request after a jump asks for when nothing else is expected."""
        return self._source.block_bytes

    @property
    def size(self) -> int | None:
        """The object's size, once a response has told it."""
        return self._source.size

    def read_ahead(self, start: int, end: int) -> None:
        """Bytes ``[start, end)`` will be read in order (an index): fetch them whole on a miss."""
        self._ahead = (start, end)

    def expect(self, nbytes: int | None) -> None:
        """Ask for ``nbytes`` at the next jump (None: a block), until told otherwise."""
        self._expected = max(1, nbytes) if nbytes is not None else None

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Copy the cached bytes at the position (up to ``len(buffer)``), fetching on a miss."""
        view = memoryview(buffer).cast("B")
        size = self._source.size
        if not view or (size is not None and self._pos >= size):
            return 0
        if self._pos != self._read_end:
            # Where the demuxer's current run of reads began (after a seek, the keyframe's
            # cluster or sample): what ``jump_pos`` tells the frame source.
            self.jump_pos = self._pos
        chunk = self._source.cached(self._pos, len(view))
        if not chunk:
            chunk = self._fetch(len(view))[: len(view)]
            if not chunk:
                return 0
        view[: len(chunk)] = chunk
        self._pos += len(chunk)
        self._read_end = self._pos
        return len(chunk)

    def _fetch(self, wanted: int) -> bytes:
        """A read-ahead span whole, what was expected (or a block) after a jump, a doubling run
        while reads are sequential.

        Requests start exactly where the demuxer reads (not at an aligned block), so a keyframe
        whose size was expected costs one request of exactly its bytes.
        """
        ahead = self._ahead
        if ahead is not None and ahead[0] <= self._pos < ahead[1]:
            self._run_bytes = self._source.block_bytes
            length = min(max(ahead[1] - self._pos, wanted), self._source.max_request_bytes)
            self._ahead = None
        else:
            if self._pos == self._next_sequential:
                # Reading on past what was expected: a run (frames decoded on), at least a block.
                doubled = max(self._run_bytes * 2, self._source.block_bytes)
                self._run_bytes = min(doubled, self._source.max_request_bytes)
            else:
                self._run_bytes = self._expected or self._source.block_bytes
            length = min(max(self._run_bytes, wanted), self._source.max_request_bytes)
        data = self._source.fetch(self._pos, length)
        self._next_sequential = self._pos + len(data)
        return data


def _why(exc: HTTPError) -> str:
    """What went wrong in a few words: the last attempt's cause, not urllib3's retry wrapper."""
    cause = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
    if isinstance(cause, NewConnectionError):
        return "cannot connect to the endpoint"
    return cause.__class__.__name__


def _total_size(content_range: str | None, known: int | None) -> int | None:
    """The ``/total`` part of ``Content-Range: bytes a-b/total``."""
    if not content_range or "/" not in content_range:
        return known
    total = content_range.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else known
