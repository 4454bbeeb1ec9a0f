"""``GET /api/videos/{id}``: a video's status, facts and stable media links, for its owner.

Polled by the page (and any client) while the fleet works, so it is built to be asked again:

- the response carries an ``ETag`` (a digest of the body) and ``If-None-Match`` gets a bodiless
  304 when nothing changed;
- ``Cache-Control: private`` with ``STATUS_FRESH_S`` while the video is in flight and
  ``STATUS_FINAL_FRESH_S`` once it is ready or failed; ``Vary`` names the Access header, since
  the same URL answers differently (or 404) for another identity;
- answers come from the micro-cache (``producer.web.status_cache``) when it is enabled.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from producer.readside.status import describe
from producer.web.access import HEADER as ACCESS_HEADER
from producer.web.conditional import etag_matches
from producer.web.deps import Resources, ResourcesDep
from producer.web.errors import ErrorRoute, api_error, openapi_errors
from producer.web.status_cache import StatusEntry
from producer.web.upload_deps import Caller, CallerDep, ServicesDep, UploadServices, upload_lifespan
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
    """One thumbnail: its key, a stable GET URL, and where in the video it was cut."""

    key: str
    url: str
    atS: float | None  # noqa: N815


class StoryboardOut(BaseModel):
    """The scrubbing storyboard: a sprite of tiles and the WebVTT file mapping times to tiles."""

    spriteUrl: str  # noqa: N815
    vttUrl: str  # noqa: N815
    tiles: int | None
    columns: int | None
    rows: int | None
    tileWidthPx: int | None  # noqa: N815
    tileHeightPx: int | None  # noqa: N815
    intervalS: float | None  # noqa: N815


class VideoStatusOut(BaseModel):
    """A video as the page shows it; presigned URLs expire at ``urlsExpireAt`` (epoch ms)."""

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
    storyboard: StoryboardOut | None
    videoUrl: str | None  # noqa: N815
    urlsExpireAt: int  # noqa: N815


@router.get(
    "/videos/{video_id}",
    summary="A video's processing status",
    response_model=VideoStatusOut,
    responses={304: {"description": "Not modified: the ETag in If-None-Match is current"}},
)
def video_status(
    video_id: str,
    request: Request,
    caller: CallerDep,
    services: ServicesDep,
    resources: ResourcesDep,
) -> Response:
    """Status, metadata of the latest task, and stable URLs for thumbnails, storyboard and video."""
    try:
        if services.status_cache is None:
            entry = _load(video_id, caller, services, resources)
        else:
            entry = services.status_cache.lookup(
                video_id, caller.user_id, lambda: _load(video_id, caller, services, resources)
            )
    except UploadRejected as exc:
        raise api_error(exc) from exc
    headers = {
        "ETag": entry.etag,
        "Cache-Control": f"private, max-age={entry.max_age_s}",
        "Vary": ACCESS_HEADER,
    }
    if etag_matches(request.headers.get("if-none-match"), entry.etag):
        return Response(status_code=304, headers=headers)
    return Response(entry.body, media_type="application/json", headers=headers)


def _load(
    video_id: str, caller: Caller, services: UploadServices, resources: Resources
) -> StatusEntry:
    """Read the rows and build the response body (validated once, then served as bytes)."""
    uploads = services.uploads
    document = describe(
        video_id,
        owner=caller.user_id,
        settings=resources.settings,
        engine=uploads.engine,
        s3=uploads.s3,
        now_s=time.time(),
    )
    body = VideoStatusOut.model_validate(document).model_dump_json().encode()
    return StatusEntry.of(
        body, status=document["status"], video_key=document["key"], settings=resources.settings
    )
