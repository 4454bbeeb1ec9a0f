"""The producer's ASGI application: health, and the routers of each HTTP concern.

Each concern (push webhook, upload API, admin API) lives in its own module with its own
``APIRouter`` and is mounted here; the app holds the process's resources in ``app.state``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import FastAPI, Security
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from producer.events.publish import ChainPublisher
from producer.events.rules import EventRules
from producer.ops import metrics
from producer.web import admin, api_document, page, upload_api, videos
from producer.web.deps import Resources, ResourcesDep
from producer.web.ratelimit import Logins
from producer.web.webhook import router as webhook_router
from schema.db import make_engine
from schema.errors import BrokerUnavailable
from schema.settings import Settings
from schema.storage import make_s3_client


def create_app(settings: Settings) -> FastAPI:
    """Build the app for ``settings``; resources open on startup and close on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        publisher = ChainPublisher(settings)
        logins = Logins.open(settings)
        app.state.resources = Resources(
            settings=settings,
            engine=engine,
            publisher=publisher,
            rules=EventRules.from_settings(settings),
            s3=make_s3_client(settings),
            logins=logins,
        )
        try:
            yield
        finally:
            logins.close()
            publisher.close()
            engine.dispose()

    # The API document is served by ``api_document``: public without the admin routes, whole
    # for the admin only.
    app = FastAPI(
        title="videofleet",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    access = [Security(api_document.ACCESS_JWT)]

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    app.include_router(api_document.router)
    app.include_router(metrics.router, dependencies=[Security(api_document.METRICS_BASIC)])
    app.include_router(upload_api.router, dependencies=access)
    app.include_router(videos.router, dependencies=access)
    app.include_router(page.router)

    @app.get("/readyz", tags=["health"])
    def readyz(resources: ResourcesDep) -> JSONResponse:
        """Readiness: the database answers ``SELECT 1`` and the broker accepts a connection."""
        checks = {"database": "ok", "broker": "ok"}
        try:
            with resources.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except DBAPIError as exc:
            checks["database"] = f"unavailable: {exc.__class__.__name__}"
        try:
            resources.publisher.ping()
        except BrokerUnavailable as exc:
            checks["broker"] = f"unavailable: {exc}"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    webhook_schemes = (
        api_document.WEBHOOK_BEARER,
        api_document.WEBHOOK_HMAC,
        api_document.WEBHOOK_SERVICE_TOKEN,
    )
    app.include_router(webhook_router, dependencies=[Security(s) for s in webhook_schemes])
    app.include_router(admin.router, dependencies=[Security(api_document.ADMIN_BASIC)])
    return app
