"""What the upload routers share: the S3 client, the rate limits, and the authenticated caller.

Each upload router declares ``lifespan=upload_lifespan``; the first one to start creates the
services in ``app.state.uploads`` and closes them at shutdown, the others reuse them, so any of
the routers can be mounted alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from producer.uploads.presigned import Uploads
from producer.web.access import AccessDenied, AccessIdentity, authenticate
from producer.web.deps import ResourcesDep
from producer.web.ratelimit import UploadLimits, client_ip
from producer.web.status_cache import StatusCache
from schema.storage import make_s3_client


@dataclass(frozen=True, slots=True)
class UploadServices:
    """The upload API's process-wide clients."""

    uploads: Uploads
    limits: UploadLimits
    status_cache: StatusCache | None


@asynccontextmanager
async def upload_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the upload services once per app (after the app's own resources)."""
    if getattr(app.state, "uploads", None) is not None:
        yield
        return
    resources = app.state.resources
    settings = resources.settings
    s3 = make_s3_client(settings)
    limits = UploadLimits(settings)
    status_cache = StatusCache(settings) if settings.status_cache_enabled else None
    app.state.uploads = UploadServices(
        Uploads(settings, resources.engine, s3), limits, status_cache
    )
    try:
        yield
    finally:
        app.state.uploads = None
        limits.close()
        if status_cache is not None:
            status_cache.close()
        s3.close()


def get_services(request: Request) -> UploadServices:
    """FastAPI dependency: the app's upload services."""
    services: UploadServices = request.app.state.uploads
    return services


ServicesDep = Annotated[UploadServices, Depends(get_services)]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: who, and from which address."""

    identity: AccessIdentity
    ip: str

    @property
    def user_id(self) -> str:
        """The user (or service token) the limits and ownership are keyed on."""
        return self.identity.user_id


def authenticated_caller(
    request: Request, resources: ResourcesDep, services: ServicesDep
) -> Caller:
    """FastAPI dependency: the verified caller, with authentication failures rate-limited per IP.

    An IP over its failure limit gets 429 before its token is checked; each 401/403 counts.
    """
    ip = client_ip(request, resources.settings)
    services.limits.check_auth_failures(ip)
    try:
        identity = authenticate(request)
    except AccessDenied:
        services.limits.count_auth_failure(ip)
        raise
    return Caller(identity, ip)


CallerDep = Annotated[Caller, Depends(authenticated_caller)]
