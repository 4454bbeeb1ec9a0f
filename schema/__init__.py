"""The contracts producer and workers share: tables, statuses, the queue message, settings."""

from schema.db import make_engine, transient_db_errors
from schema.errors import (
    BrokerUnavailable,
    DatabaseUnavailable,
    IllegalTransition,
    InvalidEvent,
    NotAVideo,
    ObjectMissing,
    PartialPublish,
    PermanentError,
    StorageUnavailable,
    TransientError,
    VideofleetError,
)
from schema.lifecycle import now_ms, transition
from schema.message import QUEUE, TASK_NAMES, Action, ObjectEvent, task_id_for
from schema.metadata import TaskMetadata
from schema.settings import Settings
from schema.status import STEPS, Step, TaskStatus, VideoStatus
from schema.tables import metadata_obj, poller_watermarks, tasks, videos

__all__ = [
    "QUEUE",
    "STEPS",
    "TASK_NAMES",
    "Action",
    "BrokerUnavailable",
    "DatabaseUnavailable",
    "IllegalTransition",
    "InvalidEvent",
    "NotAVideo",
    "ObjectEvent",
    "ObjectMissing",
    "PartialPublish",
    "PermanentError",
    "Settings",
    "Step",
    "StorageUnavailable",
    "TaskMetadata",
    "TaskStatus",
    "TransientError",
    "VideoStatus",
    "VideofleetError",
    "make_engine",
    "metadata_obj",
    "now_ms",
    "poller_watermarks",
    "task_id_for",
    "tasks",
    "transient_db_errors",
    "transition",
    "videos",
]
