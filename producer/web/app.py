"""The producer's ASGI application: health, and the routers of each HTTP concern.

Each concern (push webhook, upload API, admin API) lives in its own module with its own
``APIRouter`` and is mounted here; the app holds the process's resources in ``app.state``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from producer.publish import ChainPublisher
from producer.web import admin
from producer.web.deps import Resources
from schema.db import make_engine
from schema.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """Build the app for ``settings``; resources open on startup and close on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        publisher = ChainPublisher(settings)
        app.state.resources = Resources(settings=settings, engine=engine, publisher=publisher)
        try:
            yield
        finally:
            publisher.close()
            engine.dispose()

    app = FastAPI(title="videofleet", version="0.1.0", lifespan=lifespan)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    app.include_router(admin.router)
    return app
