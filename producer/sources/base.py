"""What every source shares: the field checks that turn a raw notification into an ``ObjectEvent``.

Each source module (``r2``, ``s3``, ``minio``) only knows where its fields live and how its
actions are spelt; the checks below make a malformed field the same clear ``InvalidEvent``
whichever source sent it.
"""

from __future__ import annotations

from typing import Any

from schema.errors import InvalidEvent

# S3, R2 and MinIO all cap object keys at 1,024 bytes of UTF-8.
MAX_KEY_BYTES = 1024
MAX_BUCKET_CHARS = 255
MAX_ETAG_CHARS = 256


def require_object(value: Any, what: str) -> dict[str, Any]:
    """Return ``value`` if it is a JSON object.

    Raises:
        InvalidEvent: it is anything else; ``what`` names the field in the message.
    """
    if not isinstance(value, dict):
        raise InvalidEvent(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def require_text(value: Any, what: str) -> str:
    """Return ``value`` if it is a non-empty string.

    Raises:
        InvalidEvent: it is missing, empty or not a string.
    """
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{what} is missing or not a non-empty string")
    return value


def check_key(key: str, what: str) -> str:
    """Return ``key`` if it is a usable object key (non-empty, at most 1,024 UTF-8 bytes).

    Raises:
        InvalidEvent: it is empty, too long, not encodable (lone surrogates) or holds a NUL.
    """
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidEvent(f"{what} is not valid UTF-8") from exc
    if size == 0:
        raise InvalidEvent(f"{what} is empty")
    if size > MAX_KEY_BYTES:
        raise InvalidEvent(f"{what} is {size} bytes long; object keys have at most {MAX_KEY_BYTES}")
    if "\x00" in key:
        # S3 cannot list such keys (XML 1.0) and PostgreSQL TEXT cannot store them.
        raise InvalidEvent(f"{what} contains a NUL character")
    return key


def check_bucket(bucket: str, what: str) -> str:
    """Return ``bucket`` if it can be a bucket name: printable ASCII, at most 255 characters.

    S3 and R2 are stricter (3-63 lower-case letters, digits, dots, hyphens); this check only
    keeps out what no store accepts and no database column should hold.

    Raises:
        InvalidEvent: it is too long or holds non-printable or non-ASCII characters.
    """
    if len(bucket) > MAX_BUCKET_CHARS or not (bucket.isascii() and bucket.isprintable()):
        raise InvalidEvent(f"{what} {bucket[:80]!r} is not a bucket name")
    return bucket


def optional_size(value: Any, what: str) -> int | None:
    """Return the object size in bytes; absent (delete events) is None.

    Raises:
        InvalidEvent: it is present but not a non-negative integer.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidEvent(f"{what} must be a non-negative integer, got {value!r}")
    return value


def optional_etag(value: Any, what: str) -> str | None:
    """Return the eTag without surrounding quotes; absent or empty (delete events) is None.

    S3 sends eTags unquoted in notifications but quoted in HTTP headers and listings; stripping
    here makes every source agree on one spelling.

    Raises:
        InvalidEvent: it is present but not a string of printable ASCII (at most 256 chars).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{what} must be a string, got {type(value).__name__}")
    etag = value.strip().strip('"')
    if len(etag) > MAX_ETAG_CHARS or not (etag.isascii() and etag.isprintable()):
        raise InvalidEvent(f"{what} {etag[:80]!r} is not an entity tag")
    return etag or None


def optional_text(value: Any) -> str | None:
    """Return ``value`` if it is a string, else None (informational fields such as times)."""
    return value if isinstance(value, str) else None
