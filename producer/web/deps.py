"""What request handlers get from the app: the process's settings, engine and publisher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from producer.events.publish import ChainPublisher
from producer.events.rules import EventRules
from producer.web.ratelimit import Logins
from schema.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True, slots=True)
class Resources:
    """The process-wide resources, created once in the app's lifespan."""

    settings: Settings
    engine: Engine
    publisher: ChainPublisher
    rules: EventRules
    s3: S3Client
    logins: Logins


def get_resources(request: Request) -> Resources:
    """FastAPI dependency: the app's resources."""
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]
