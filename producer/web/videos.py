"""``GET /api/videos/{id}``: a video's status, facts and presigned thumbnail URLs, for its owner."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from producer.video_status import describe
from producer.web.deps import ResourcesDep
from producer.web.errors import ErrorRoute, api_error, openapi_errors
from producer.web.upload_deps import CallerDep, ServicesDep, upload_lifespan
from schema.errors import UploadRejected

router = APIRouter(
    prefix="/api",
    tags=["videos"],
    route_class=ErrorRoute,
    lifespan=upload_lifespan,
    responses=openapi_errors(401, 403, 404, 429, 503),
)


class TaskOut(BaseModel):
    """The latest processing task of the video's key."""

    id: str
    status: str
    step: str | None
    error: str | None
    retryCount: int  # noqa: N815


class ThumbnailOut(BaseModel):
    """One thumbnail: its key, a short-lived GET URL, and where in the video it was cut."""

    key: str
    url: str
    atS: float | None  # noqa: N815


class VideoStatusOut(BaseModel):
    """A video as the page shows it; URLs expire at ``urlsExpireAt`` (epoch ms)."""

    videoId: str  # noqa: N815
    key: str
    filename: str | None
    contentType: str | None  # noqa: N815
    sizeBytes: int | None  # noqa: N815
    status: str = Field(description="uploading | processing | ready | failed | deleted")
    createdAt: int  # noqa: N815
    updatedAt: int  # noqa: N815
    task: TaskOut | None
    metadata: dict[str, Any] = Field(description="probe results and step timings")
    thumbnails: list[ThumbnailOut]
    videoUrl: str | None  # noqa: N815
    urlsExpireAt: int  # noqa: N815


@router.get("/videos/{video_id}", summary="A video's processing status")
def video_status(
    video_id: str, caller: CallerDep, services: ServicesDep, resources: ResourcesDep
) -> VideoStatusOut:
    """Status, metadata of the latest task, and presigned GET URLs for thumbnails and video."""
    uploads = services.uploads
    try:
        document = describe(
            video_id,
            owner=caller.user_id,
            settings=resources.settings,
            engine=uploads.engine,
            s3=uploads.s3,
        )
    except UploadRejected as exc:
        raise api_error(exc) from exc
    return VideoStatusOut.model_validate(document)
