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

from producer.events.services import open_services
from producer.ops import metrics
from producer.web import admin, api_document, page, upload_api, videos
from producer.web.deps import Resources, ResourcesDep
from producer.web.ratelimit import Logins
from producer.web.webhook import router as webhook_router
from schema.db import transient_db_errors
from schema.errors import BrokerUnavailable, DatabaseUnavailable
from schema.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """Build the app for ``settings``; resources open on startup and close on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with open_services(settings) as services:
            logins = Logins.open(settings)
            app.state.resources = Resources.of(services, logins=logins)
            try:
                yield
            finally:
                logins.close()

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
            with transient_db_errors(), resources.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except DatabaseUnavailable as exc:
            checks["database"] = f"unavailable: {exc}"
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
