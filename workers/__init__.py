"""The worker side: ``celery -A workers worker -Q video-events`` runs the chain's steps."""

from workers.app import app

__all__ = ["app"]
