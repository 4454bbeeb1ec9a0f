"""Conditional GETs: whether ``If-None-Match`` names the current ETag (RFC 9110, 13.1.2).

The status API and the page's own files answer such a request with a bodiless 304.
"""

from __future__ import annotations


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, lists and ``*``)."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags
