"""The error tree, shaped around one decision: retry or not.

    VideofleetError
    ├── TransientError        retried with backoff (storage, database, broker hiccups)
    │   ├── StorageUnavailable
    │   ├── DatabaseUnavailable
    │   ├── BrokerUnavailable
    │   │   └── PartialPublish
    │   ├── WebhookUndelivered
    │   ├── D1Unavailable     the D1 query API answered 429/5xx or not at all
    │   └── QueueApiUnavailable   the Cloudflare Queues API answered 429/5xx or not at all
    └── PermanentError        never retried; the task fails at once with the reason recorded
        ├── NotAVideo
        │   └── VideoTooLarge   more pixels per frame than MAX_VIDEO_PIXELS
        ├── ObjectMissing
        ├── Superseded      the object was overwritten: the newer version's task processes it
        ├── InvalidEvent
        ├── IllegalTransition
        ├── WebhookExpired
        ├── D1Rejected        the D1 query API refused the request (SQL, token, database id)
        ├── QueueApiRefused   the Queues API refused the request (token, queue id, mode)
        └── UploadRejected    the upload API refuses a request (bad type, too large, bad parts)
            └── UploadNotFound  no such upload or video, or someone else's

Workers retry exactly the ``TransientError`` subtree; everything else ends the task.
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[VideofleetError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class VideofleetError(Exception):
    """Base of every error videofleet raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle restores an exception by calling cls(*args), which fails for the keyword-only
        # arguments below; Celery then reports the nearest picklable base class (PermanentError
        # instead of NotAVideo). Restoring args and attributes directly keeps the real class.
        return (_rebuild, (self.__class__, self.args, dict(self.__dict__)))


class TransientError(VideofleetError):
    """Raised when a dependency failed in a way that may pass (network, storage, database)."""


class StorageUnavailable(TransientError):
    """Raised when the S3/R2 endpoint could not be reached or answered with a server error."""

    def __init__(self, message: str, *, video_key: str = "") -> None:
        super().__init__(message)
        self.video_key = video_key


class DatabaseUnavailable(TransientError):
    """Raised when the database could not be reached or dropped the connection."""


class BrokerUnavailable(TransientError):
    """Raised when a chain could not be handed to the broker."""


class PartialPublish(BrokerUnavailable):
    """Raised when the broker failed part-way through a batch; ``published`` went out before."""

    def __init__(self, message: str, *, published: tuple[str, ...]) -> None:
        super().__init__(message)
        self.published = published


class PermanentError(VideofleetError):
    """Raised when the input itself is unusable; retrying cannot help."""


class NotAVideo(PermanentError):
    """Raised when the bytes were read but hold no decodable video in an allowed container."""

    def __init__(self, message: str, *, video_key: str, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.video_key = video_key
        self.stderr_tail = stderr_tail


class VideoTooLarge(NotAVideo):
    """Raised when a frame has more pixels than the fleet decodes (``MAX_VIDEO_PIXELS``).

    One such frame can take gigabytes to decode, so it is refused before any frame is decoded.
    """

    def __init__(self, *, video_key: str, width: int, height: int, max_pixels: int) -> None:
        super().__init__(
            f"the video is {width}x{height}, more than the {max_pixels} pixels per frame"
            " this fleet decodes (MAX_VIDEO_PIXELS)",
            video_key=video_key,
        )
        self.width = width
        self.height = height
        self.max_pixels = max_pixels


class Superseded(PermanentError):
    """Raised when the object no longer is the version a task was created for.

    The key was overwritten (or the notification named a version that never was): the task for
    the version in the bucket processes it, so this one ends without work or writes.
    """

    def __init__(self, message: str, *, video_key: str) -> None:
        super().__init__(message)
        self.video_key = video_key


class ObjectMissing(PermanentError):
    """Raised when the object named by an event no longer exists in the bucket."""

    def __init__(self, message: str, *, video_key: str) -> None:
        super().__init__(message)
        self.video_key = video_key


class InvalidEvent(PermanentError):
    """Raised when an event notification body cannot be understood."""


class IllegalTransition(PermanentError):
    """Raised when a task status change is not one the lifecycle allows."""

    def __init__(self, task_id: str, current: str | None, wanted: str) -> None:
        super().__init__(f"Task {task_id}: cannot go from {current} to {wanted}")
        self.task_id = task_id
        self.current = current
        self.wanted = wanted


class WebhookUndelivered(TransientError):
    """Raised when the completion webhook's receiver could not be reached or did not answer 2xx."""


class WebhookExpired(PermanentError):
    """Raised when a completion notification was still undelivered at its deadline."""


class D1Unavailable(TransientError):
    """Raised when Cloudflare's D1 query API could not be reached, throttled, or failed (5xx)."""


class D1Rejected(PermanentError):
    """Raised when the D1 query API refused a request (4xx): bad SQL, token, or database id.

    Retrying cannot help; after fixing the cause, ``videofleet d1 sync --since`` catches up.
    """


class QueueApiUnavailable(TransientError):
    """Raised when the Cloudflare Queues API is rate limiting (429), failing (5xx) or unreachable.

    ``retry_after_s`` is the wait the API asked for (``Retry-After``), when it named one.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueApiRefused(PermanentError):
    """Raised when the Queues API refuses the request itself: bad token, queue id or mode."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class UploadRejected(PermanentError):
    """Raised when an upload request breaks the upload policy (type, size, name, parts).

    ``code`` is the machine-readable reason the API returns, e.g. ``unsupported_type``.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class UploadNotFound(UploadRejected):
    """Raised when an upload or video does not exist or belongs to someone else."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="not_found")
