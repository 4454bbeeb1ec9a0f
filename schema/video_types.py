"""The video container types the fleet takes in, by file extension, with their MIME types.

One table for every door: ``INGEST_EXTENSIONS`` defaults to its extensions, the upload API signs
uploads with its MIME types, and the upload page gets both from the server, so a type added
here is admitted everywhere at once. Validation (the worker's probe) is the real gate; the table
only keeps out what is plainly not a video, so it lists what users upload and ffmpeg reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

VIDEO_TYPES: Mapping[str, str] = MappingProxyType(
    {
        ".mp4": "video/mp4",
        ".m4v": "video/x-m4v",
        ".mov": "video/quicktime",
        ".qt": "video/quicktime",
        ".avi": "video/x-msvideo",
        ".mkv": "video/x-matroska",
        ".webm": "video/webm",
        ".ts": "video/mp2t",
        ".m2ts": "video/mp2t",
        ".mts": "video/mp2t",
        ".3gp": "video/3gpp",
        ".3g2": "video/3gpp2",
        ".mpg": "video/mpeg",
        ".mpeg": "video/mpeg",
        ".ogv": "video/ogg",
        ".flv": "video/x-flv",
        ".wmv": "video/x-ms-wmv",
        ".asf": "video/x-ms-asf",
    }
)
