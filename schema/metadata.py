"""The task row's ``metadata`` document: what each step records, declared once for both roles.

Workers write it (``workers.records``, ``workers.steps``), the producer reads it back (metrics,
reports, requeue, recovery, video status), and D1 stores it as TEXT. ``MetadataColumn`` is the
column's type, so every read of ``tasks.c.metadata`` is a ``TaskMetadata`` and every write is
encoded by ``encode``: there is one codec.

Old rows must keep decoding: every section is optional, fields added later have defaults, and
keys this version does not know are kept (``extra="allow"``) and written back unchanged. A
section that does not validate is left out of the typed view (logged) instead of making the
whole row unreadable, and is still written back as it was stored until a step replaces it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from schema.status import Step

logger = logging.getLogger(__name__)


class _Section(BaseModel):
    # Unknown keys (older or newer versions) survive a read-modify-write.
    model_config = ConfigDict(extra="allow")


class MediaInfo(_Section):
    """What validation learns about a video (``metadata.probe``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    duration_s: float
    width: int
    height: int
    # Rows from before rotation and pixel aspect were recorded lack these.
    display_width: int | None = None
    display_height: int | None = None
    rotation: int = 0
    video_codec: str | None = None
    audio_codec: str | None = None
    frame_rate: float | None = None
    bit_rate: int | None = None
    size_bytes: int | None = None
    container: str | None = None

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown (rotation and pixel aspect applied)."""
        return (self.display_width or self.width, self.display_height or self.height)


class Thumbnails(_Section):
    """What ``generate-thumbnails`` stored (``metadata.thumbnails``)."""

    keys: list[str] = Field(default_factory=list)
    times_s: list[float] = Field(default_factory=list)
    frame_times_s: list[float] = Field(default_factory=list)
    width_px: int | None = None
    poster_key: str | None = None
    blank: list[bool] = Field(default_factory=list)

    @property
    def poster(self) -> str | None:
        """The video's poster: the first non-blank thumbnail (older rows: the first)."""
        return self.poster_key or (self.keys[0] if self.keys else None)


class Storyboard(_Section):
    """The storyboard's sprite, its WebVTT map and its grid (``metadata.storyboard``)."""

    sprite_key: str
    vtt_key: str
    tiles: int
    columns: int
    rows: int
    tile_width_px: int
    tile_height_px: int
    interval_s: float


class Reads(_Section):
    """What the steps read from storage (``metadata.reads``): the bytes-per-video figures."""

    probe_requests: int | None = None
    probe_bytes: int | None = None
    requests: int | None = None
    bytes: int | None = None
    object_bytes: int | None = None
    decoded_frames: int | None = None


class Requeue(_Section):
    """One admin requeue (``metadata.requeues[]``)."""

    at: int = 0
    by: str | None = None
    reason: str | None = None
    from_step: str | None = None
    error: str | None = None


class Recovery(_Section):
    """One republish of a stuck task by the recovery sweep (``metadata.recoveries[]``)."""

    at: int = 0
    status: str | None = None
    step: str | None = None
    gave_up: bool | None = None


class TaskMetadata(_Section):
    """The whole document. Build a patch with only the sections a write changes."""

    probe: MediaInfo | None = None
    thumbnails: Thumbnails | None = None
    storyboard: Storyboard | None = None
    # step name (and "total") -> wall seconds
    timings_s: dict[str, float] = Field(default_factory=dict)
    # media work alone ("probe", "capture") -> seconds: the rest of a step is orchestration
    media_s: dict[str, float] = Field(default_factory=dict)
    reads: Reads | None = None
    # step name -> how often it started (redeliveries show as > 1)
    runs: dict[str, int] = Field(default_factory=dict)
    # step message id -> retries recorded for it (keeps retry_count idempotent)
    retries: dict[str, int] = Field(default_factory=dict)
    error_class: str | None = None
    last_retry_class: str | None = None
    requeues: list[Requeue] = Field(default_factory=list)
    recoveries: list[Recovery] = Field(default_factory=list)
    # sections as stored that did not validate: written back untouched (see the module docs)
    _unreadable: dict[str, Any] = PrivateAttr(default_factory=dict)

    def first_unsaved_step(self) -> Step:
        """The first step whose result is not recorded: where a lost or requeued chain resumes.

        ``validate-video`` saves ``probe``, ``generate-thumbnails`` saves ``thumbnails.keys``;
        ``update-database`` saves nothing a later step reads.
        """
        if self.probe is None or not self.probe.duration_s:
            return Step.VALIDATE
        if self.thumbnails is None or not self.thumbnails.keys:
            return Step.THUMBNAILS
        return Step.UPDATE

    def recoveries_since_requeue(self) -> int:
        """Recoveries since the last requeue: a requeue gives a task a fresh start."""
        since = max((r.at for r in self.requeues), default=0)
        return sum(1 for r in self.recoveries if r.at >= since)


# The keys the metrics read inside the database (json_extract / ->>), checked at import.
ERROR_CLASS_KEY = "error_class"
LAST_RETRY_CLASS_KEY = "last_retry_class"
assert {ERROR_CLASS_KEY, LAST_RETRY_CLASS_KEY} <= set(TaskMetadata.model_fields)


def as_document(meta: TaskMetadata) -> dict[str, Any]:
    """The JSON data of ``meta``: exactly the keys that were stored or set, nothing defaulted."""
    return {**meta._unreadable, **meta.model_dump(mode="json", exclude_unset=True)}


def encode(meta: TaskMetadata) -> str:
    """The TEXT stored in the column (and in D1): key-sorted JSON."""
    return json.dumps(as_document(meta), sort_keys=True)


def decode(text: str | None) -> TaskMetadata:
    """Read the column; empty is an empty document (see the module docs for invalid ones)."""
    if not text:
        return TaskMetadata()
    try:
        value = json.loads(text)
    except ValueError:
        logger.warning("Task metadata: not JSON, read as an empty document")
        return TaskMetadata()
    return from_document(value if isinstance(value, dict) else {})


def from_document(document: dict[str, Any]) -> TaskMetadata:
    """Validate JSON data; top-level sections that do not validate are kept aside, untyped."""
    document = dict(document)
    unreadable: dict[str, Any] = {}
    while True:
        try:
            meta = TaskMetadata.model_validate(document)
        except ValidationError as exc:
            bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]} & set(document)
            if not bad:
                raise
            logger.warning(
                "Task metadata: sections %s do not validate; kept as stored", sorted(bad)
            )
            unreadable.update((key, document.pop(key)) for key in bad)
        else:
            meta._unreadable = unreadable
            return meta


def merge(base: TaskMetadata, patch: TaskMetadata) -> TaskMetadata:
    """``patch`` laid over ``base``: nested objects merge (steps add to each other's
    ``timings_s``), lists and values are replaced."""
    return from_document(_merge(as_document(base), as_document(patch)))


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        old = merged.get(key)
        merged[key] = (
            _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return merged


class MetadataColumn(sa.types.TypeDecorator[TaskMetadata]):
    """``metadata`` as TEXT in the database (as D1 stores it), ``TaskMetadata`` in Python.

    Writes also take JSON text (stored as given: rows copied from D1, fixtures) or a plain
    dict (validated like a read).
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect | None) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            return encode(from_document(value))
        return encode(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect | None) -> TaskMetadata:
        return decode(value)
