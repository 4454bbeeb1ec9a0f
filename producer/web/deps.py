"""What request handlers get from the app: the process's ingest services and login limiter."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated

from fastapi import Depends, Request

from producer.events.services import Services
from producer.web.ratelimit import Logins


@dataclass(frozen=True, slots=True)
class Resources(Services):
    """The process-wide resources, created once in the app's lifespan."""

    logins: Logins

    @classmethod
    def of(cls, services: Services, *, logins: Logins) -> Resources:
        """The app's resources: ``services`` (from ``open_services``) and the login limiter."""
        return cls(**{f.name: getattr(services, f.name) for f in fields(services)}, logins=logins)


def get_resources(request: Request) -> Resources:
    """FastAPI dependency: the app's resources."""
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]
