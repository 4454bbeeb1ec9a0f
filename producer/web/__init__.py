"""The producer's HTTP side: one ASGI app, one router per concern."""

from producer.web.app import create_app

__all__ = ["create_app"]
