"""Where the fleet stores what it derives from a video: one folder per video key.

    <THUMBNAILS_PREFIX><video key>/000.<hash>.jpg ... 00N.<hash>.jpg   thumbnails
    <THUMBNAILS_PREFIX><video key>/storyboard.<hash>.jpg              storyboard sprite
    <THUMBNAILS_PREFIX><video key>/storyboard.<hash>.vtt              storyboard map

Workers write under these keys; the producer removes the folder when the video is deleted and
never processes an object inside it. Both take the layout from here.
"""

from __future__ import annotations

import hashlib

KEY_HASH_CHARS = 16


def derived_folder(prefix: str, video_key: str) -> str:
    """The folder (a key prefix ending in ``/``) holding everything derived from ``video_key``."""
    return f"{prefix}{video_key}/"


def thumbnail_key(prefix: str, video_key: str, index: int, data: bytes) -> str:
    """The key of a video's ``index``-th thumbnail, versioned by its bytes (see ``_versioned``)."""
    return _versioned(f"{derived_folder(prefix, video_key)}{index:03d}.jpg", data)


def storyboard_key(prefix: str, video_key: str, name: str, data: bytes) -> str:
    """The key of a storyboard file beside the video's thumbnails, versioned by its bytes."""
    return _versioned(f"{derived_folder(prefix, video_key)}{name}", data)


def _versioned(key: str, data: bytes) -> str:
    """``a/000.jpg`` -> ``a/000.<hash of data>.jpg``.

    Derived objects are served with an immutable ``Cache-Control``, so a browser or the edge
    never asks again for a URL it holds: a re-run that produces other bytes must produce another
    key, and one that produces the same bytes keeps the key (and every cached copy). The
    objects of earlier versions stay under the video's folder until the video is deleted.
    """
    stem, dot, ext = key.rpartition(".")
    digest = hashlib.sha256(data).hexdigest()[:KEY_HASH_CHARS]
    return f"{stem}.{digest}.{ext}" if dot and "/" not in ext else f"{key}.{digest}"
