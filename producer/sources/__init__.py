"""Event sources: each turns one notification format into ``ObjectEvent``s."""

from typing import Any

from producer.sources.r2 import parse_r2
from schema.errors import InvalidEvent
from schema.message import ObjectEvent


def parse_body(body: Any) -> list[ObjectEvent]:
    """Normalise one decoded notification body of any supported source into events.

    Raises:
        InvalidEvent: the body matches no supported format; the message says why.
    """
    if isinstance(body, dict) and "action" in body:
        return [parse_r2(body)]
    raise InvalidEvent("not a recognised event notification body")


__all__ = ["parse_body", "parse_r2"]
