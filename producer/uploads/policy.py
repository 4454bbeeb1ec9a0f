"""What the upload API accepts, as pure functions: video types, sizes, safe keys, part plans.

Everything here is decided before a byte moves, so a bad request gets a clear error instead of
a presigned URL. The page (``producer/web/static/upload.js``) applies the same rules first.
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from schema.errors import UploadRejected
from schema.video_types import VIDEO_TYPES

UPLOADS_PREFIX = "uploads/"
MAX_FILENAME_CHARS = 255
MAX_SAFE_STEM_CHARS = 80
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Controls (C0 with NUL, CR, LF; DEL; C1), lone surrogates, line and paragraph separators.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


@dataclass(frozen=True, slots=True)
class PartPlan:
    """How a multipart upload is cut: equal parts, the last one possibly smaller (R2's rule)."""

    part_size: int
    part_count: int
    size: int

    def part_length(self, number: int) -> int:
        """Bytes in part ``number`` (1-based)."""
        if not 1 <= number <= self.part_count:
            raise UploadRejected(
                f"part number {number} is outside 1..{self.part_count}", code="bad_part_number"
            )
        if number < self.part_count:
            return self.part_size
        return self.size - self.part_size * (self.part_count - 1)


def split_name(filename: str) -> tuple[str, str]:
    """The base name's stem and lower-cased extension; paths of either kind of slash are dropped.

    The extension is whatever follows the last dot, so ``.mp4`` is an MP4 with an empty stem.
    """
    base = filename.strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, extension = base.rpartition(".")
    if not dot:
        return base, ""
    return stem, f".{extension.lower()}"


def upload_types(extensions: tuple[str, ...]) -> dict[str, str]:
    """The video types (extension → MIME type) uploads may have: those ingest will take too.

    ``extensions`` is ``INGEST_EXTENSIONS`` (empty: every video type), so an upload is never
    accepted only to be ignored when its notification arrives.
    """
    return {ext: mime for ext, mime in VIDEO_TYPES.items() if not extensions or ext in extensions}


def content_type_for(
    filename: str, content_type: str, *, types: Mapping[str, str] = VIDEO_TYPES
) -> str:
    """Return the canonical MIME type of a video upload, or refuse it.

    The extension decides the type; the declared ``content_type`` must be that type, because it
    is bound into the presigned URL and the browser must send exactly it.

    Raises:
        UploadRejected: not one of ``types``, or the type does not match the extension.
    """
    _, extension = split_name(filename)
    expected = types.get(extension)
    allowed = ", ".join(types)
    if expected is None:
        raise UploadRejected(
            f"{filename!r} is not a video upload: allowed extensions are {allowed}",
            code="unsupported_type",
        )
    declared = content_type.split(";", 1)[0].strip().lower()
    if declared != expected:
        raise UploadRejected(
            f"contentType {content_type!r} does not match the {extension} extension "
            f"(expected {expected})",
            code="unsupported_type",
        )
    return expected


def check_size(size: int, *, max_bytes: int, single_max_bytes: int | None = None) -> None:
    """Refuse empty files, files above ``max_bytes`` and single PUTs above ``single_max_bytes``.

    Raises:
        UploadRejected: ``empty_file``, ``file_too_large`` or ``use_multipart``.
    """
    if size <= 0:
        raise UploadRejected("the file is empty (0 bytes)", code="empty_file")
    if size > max_bytes:
        raise UploadRejected(
            f"the file has {size} bytes; the limit is {max_bytes} bytes", code="file_too_large"
        )
    if single_max_bytes is not None and size > single_max_bytes:
        raise UploadRejected(
            f"files above {single_max_bytes} bytes go as multipart: POST /api/multipart",
            code="use_multipart",
        )


def safe_filename(filename: str) -> str:
    """Reduce a client's file name to ``[A-Za-z0-9._-]``, keeping (and lower-casing) the extension.

    Accents are folded to ASCII, every other run of unsafe characters becomes one ``-``, leading
    dots go (no hidden or relative names), and the stem is bounded so keys stay short.
    """
    stem, extension = split_name(filename)
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    safe_stem = _UNSAFE.sub("-", ascii_stem).strip(".-_")[:MAX_SAFE_STEM_CHARS].strip(".-_")
    return f"{safe_stem or 'video'}{_UNSAFE.sub('', extension)}"


def object_key(filename: str, *, unique: uuid.UUID | None = None) -> str:
    """The key an upload is stored under: ``uploads/<random uuid>-<safe file name>``."""
    return f"{UPLOADS_PREFIX}{unique or uuid.uuid4()}-{safe_filename(filename)}"


def check_filename(filename: str) -> str:
    """Return the name trimmed, refusing empty, over-long and unprintable names.

    A name is stored and shown back as given, so characters that cut or forge lines (NUL, CR,
    LF and the other controls, Unicode line separators) or cannot be stored (lone surrogates)
    are refused rather than silently changed: the client learns its name was not kept.

    Raises:
        UploadRejected: ``bad_filename``, naming the first such character.
    """
    name = filename.strip()
    if not name or len(name) > MAX_FILENAME_CHARS:
        raise UploadRejected(
            f"filename must have 1..{MAX_FILENAME_CHARS} characters", code="bad_filename"
        )
    for char in name:
        if unicodedata.category(char) in _UNPRINTABLE_CATEGORIES:
            raise UploadRejected(
                f"filename must not contain control characters (found U+{ord(char):04X})",
                code="bad_filename",
            )
    return name


def plan_parts(size: int, *, preferred_part_bytes: int) -> PartPlan:
    """Cut ``size`` bytes into equal parts of at least ``preferred_part_bytes``.

    The part size grows (in whole MiB) when ``size`` would need more than R2's 10,000 parts,
    and never drops below R2's 5 MiB minimum.
    """
    if size <= 0:
        raise UploadRejected("the file is empty (0 bytes)", code="empty_file")
    mib = 1024 * 1024
    fit = math.ceil(math.ceil(size / MAX_PARTS) / mib) * mib
    part_size = max(preferred_part_bytes, MIN_PART_BYTES, fit)
    return PartPlan(part_size=part_size, part_count=math.ceil(size / part_size), size=size)


def check_completed_parts(plan: PartPlan, numbers: list[int]) -> None:
    """Refuse a completion that does not list every planned part exactly once, in order.

    Raises:
        UploadRejected: ``bad_parts``.
    """
    expected = list(range(1, plan.part_count + 1))
    if numbers != expected:
        raise UploadRejected(
            f"parts must be numbered 1..{plan.part_count} in order, each once; got {len(numbers)}",
            code="bad_parts",
        )
