"""Bucket names: the S3 naming rules, which R2 and MinIO follow too.

A name is 3-63 characters of lower-case letters, digits, dots and hyphens, starts and ends with
a letter or digit, has no two dots in a row and is not an IP address; AWS also reserves a few
prefixes and suffixes. R2 is stricter (no dots), but a dotted name that reaches it is simply
not one of its buckets, so one rule serves every store. Both the settings (``S3_BUCKET``,
``INGEST_BUCKETS``) and every event source check names with it, so a name botocore would refuse
is an invalid event at the door instead of three retried storage errors later.
"""

from __future__ import annotations

import re

MIN_BUCKET_CHARS = 3
MAX_BUCKET_CHARS = 63
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a bucket name, or None when it can."""
    if not MIN_BUCKET_CHARS <= len(name) <= MAX_BUCKET_CHARS:
        return f"a bucket name has {MIN_BUCKET_CHARS} to {MAX_BUCKET_CHARS} characters"
    if not name.isascii() or not _NAME.fullmatch(name):
        return (
            "a bucket name holds only lower-case letters, digits, dots and hyphens, "
            "and starts and ends with a letter or digit"
        )
    if ".." in name:
        return "a bucket name has no two dots in a row"
    if _IP_ADDRESS.fullmatch(name):
        return "a bucket name is not an IP address"
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        return "a bucket name does not use a prefix or suffix S3 reserves"
    return None
