"""The error tree, shaped around one decision: retry or not.

    VideofleetError
    ├── TransientError        retried with backoff (storage, database, broker hiccups)
    │   ├── StorageUnavailable
    │   ├── DatabaseUnavailable
    │   └── BrokerUnavailable
    │       └── PartialPublish
    └── PermanentError        never retried; the task fails at once with the reason recorded
        ├── NotAVideo
        ├── ObjectMissing
        ├── InvalidEvent
        └── IllegalTransition

Workers retry exactly the ``TransientError`` subtree; everything else ends the task.
"""

from __future__ import annotations


class VideofleetError(Exception):
    """Base of every error videofleet raises on purpose."""


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
    """Raised when ffprobe reads the object but finds no decodable video stream."""

    def __init__(self, message: str, *, video_key: str, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.video_key = video_key
        self.stderr_tail = stderr_tail


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
