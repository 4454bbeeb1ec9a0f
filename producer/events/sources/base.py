"""What every source shares: the field checks that turn a raw notification into an ``ObjectEvent``.

Each source module (``r2``, ``s3``, ``minio``) only knows where its fields live and how its
actions are spelt; the checks below make a malformed field the same clear ``InvalidEvent``
whichever source sent it.
"""

from __future__ import annotations

import re
from typing import Any

from schema.buckets import bucket_name_problem
from schema.errors import InvalidEvent

# S3, R2 and MinIO all cap object keys at 1,024 bytes of UTF-8.
MAX_KEY_BYTES = 1024
MAX_ETAG_CHARS = 256
# An MD5 in hex, or (multipart) the MD5 of the parts' MD5s and the part count: "<hex>-<n>".
_ETAG = re.compile(r"[0-9A-Fa-f]+(-[0-9]+)?")
_JSON_TYPES = {str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def json_type(value: Any) -> str:
    """How JSON spells the type of a decoded value, for messages: ``null``, ``a boolean``, ..."""
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def require_object(value: Any, what: str) -> dict[str, Any]:
    """Return ``value`` if it is a JSON object.

    Raises:
        InvalidEvent: it is anything else; ``what`` names the field in the message.
    """
    if not isinstance(value, dict):
        raise InvalidEvent(f"{what} must be a JSON object, got {json_type(value)}")
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
    """Return ``bucket`` if it can be a bucket name under S3's naming rules (``schema.buckets``).

    Whether the fleet serves that bucket is the rules' decision (``EventRules.refuse_foreign``).

    Raises:
        InvalidEvent: it breaks the naming rules; the message says which.
    """
    problem = bucket_name_problem(bucket)
    if problem is not None:
        raise InvalidEvent(f"{what} {bucket[:80]!r} is not a bucket name: {problem}")
    return bucket


def optional_size(value: Any, what: str) -> int | None:
    """Return the object size in bytes; absent (delete events) is None.

    Raises:
        InvalidEvent: it is present but not a non-negative integer.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"{what} must be a non-negative integer, got {json_type(value)}")
    if value < 0:
        raise InvalidEvent(f"{what} must be a non-negative integer, got {value}")
    return value


def optional_etag(value: Any, what: str) -> str | None:
    """Return the eTag without surrounding quotes; absent or empty (delete events) is None.

    S3 sends eTags unquoted in notifications but quoted in HTTP headers and listings; stripping
    here makes every source agree on one spelling. R2, S3 and MinIO all write hex (an MD5, with
    ``-<parts>`` after a multipart upload); anything else did not come from a store, and the
    eTag is part of the task's identity, so it is refused rather than trusted.

    Raises:
        InvalidEvent: it is present but not a hex entity tag of at most 256 characters.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{what} must be a string, got {json_type(value)}")
    etag = value.strip().strip('"')
    if not etag:
        return None
    if len(etag) > MAX_ETAG_CHARS or not (etag.isascii() and _ETAG.fullmatch(etag)):
        raise InvalidEvent(f"{what} {etag[:80]!r} is not an entity tag (hex, as stores write)")
    return etag


def optional_text(value: Any) -> str | None:
    """Return ``value`` if it is a string, else None (informational fields such as times)."""
    return value if isinstance(value, str) else None
