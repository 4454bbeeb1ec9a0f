"""Event sources: each turns one notification format into ``ObjectEvent``s."""

from producer.sources.r2 import parse_r2

__all__ = ["parse_r2"]
