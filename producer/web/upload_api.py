"""Upload endpoints: one presigned PUT up to the multipart threshold, multipart above it.

    POST   /api/upload-url                        {filename, contentType, size} -> presigned PUT
    POST   /api/multipart                         {filename, contentType, size} -> uploadId, parts
    POST   /api/multipart/{uploadId}/part-urls    {partNumbers} -> presigned UploadPart URLs
    GET    /api/multipart/{uploadId}/parts        parts already stored (resume)
    POST   /api/multipart/{uploadId}/complete     {parts: [{partNumber, etag}]}
    DELETE /api/multipart/{uploadId}              abort

Every call needs a valid Cloudflare Access token; the multipart calls act only on the caller's
own upload, whose key comes from its ``videos`` row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from producer.uploads.policy import MAX_PARTS
from producer.uploads.presigned import MultipartUpload, NewMultipart, NewUpload
from producer.web.errors import ErrorRoute, api_error, openapi_errors
from producer.web.upload_deps import CallerDep, ServicesDep, upload_lifespan
from schema.errors import StorageUnavailable, UploadRejected

Started = TypeVar("Started", NewUpload, NewMultipart)

router = APIRouter(
    prefix="/api",
    tags=["uploads"],
    route_class=ErrorRoute,
    lifespan=upload_lifespan,
    responses=openapi_errors(401, 403, 422, 429, 503),
)

MAX_PART_URLS_PER_CALL = 1000
# Request bodies take JSON's own types: "1000" or true is not a size (422), never coerced.
STRICT = ConfigDict(strict=True)


class UploadRequest(BaseModel):
    """A file the client wants to upload, described before any byte is sent."""

    model_config = STRICT

    filename: str = Field(min_length=1, max_length=1024, examples=["holiday.mp4"])
    contentType: str = Field(min_length=1, max_length=255, examples=["video/mp4"])  # noqa: N815
    size: int = Field(ge=0, description="bytes", examples=[12_345_678])


class UploadUrlOut(BaseModel):
    """Where to PUT the file: send exactly the ``Content-Type`` given, before ``expiresAt``."""

    uploadUrl: str  # noqa: N815
    key: str
    videoId: str  # noqa: N815
    contentType: str  # noqa: N815
    expiresAt: int = Field(description="epoch milliseconds")  # noqa: N815


class MultipartOut(BaseModel):
    """A created multipart upload: ``partCount`` parts of ``partSize`` bytes, the last smaller."""

    uploadId: str  # noqa: N815
    key: str
    videoId: str  # noqa: N815
    contentType: str  # noqa: N815
    partSize: int  # noqa: N815
    partCount: int  # noqa: N815
    expiresAt: int = Field(description="epoch milliseconds; part URLs are valid that long")  # noqa: N815


class PartUrlsRequest(BaseModel):
    """Which parts to presign (1-based)."""

    model_config = STRICT

    partNumbers: list[Annotated[int, Field(ge=1, le=MAX_PARTS)]] = Field(  # noqa: N815
        min_length=1, max_length=MAX_PART_URLS_PER_CALL
    )


class PartUrl(BaseModel):
    """One presigned UploadPart URL; PUT exactly ``size`` bytes to it."""

    partNumber: int  # noqa: N815
    url: str
    size: int


class PartUrlsOut(BaseModel):
    """Presigned part URLs."""

    key: str
    parts: list[PartUrl]


class StoredPart(BaseModel):
    """A part the store already has."""

    partNumber: int  # noqa: N815
    etag: str
    size: int


class PartsOut(BaseModel):
    """The parts uploaded so far, and the plan to complete the rest."""

    key: str
    videoId: str  # noqa: N815
    partSize: int  # noqa: N815
    partCount: int  # noqa: N815
    parts: list[StoredPart]


class CompletedPart(BaseModel):
    """A part's number and the ETag its PUT returned."""

    model_config = STRICT

    partNumber: int = Field(ge=1, le=MAX_PARTS)  # noqa: N815
    etag: str = Field(min_length=1, max_length=200)


class CompleteRequest(BaseModel):
    """Every part, in order."""

    model_config = STRICT

    parts: list[CompletedPart] = Field(min_length=1, max_length=MAX_PARTS)


class CompleteOut(BaseModel):
    """The finished object; processing starts when the store's event arrives."""

    key: str
    videoId: str  # noqa: N815
    etag: str


def _url_out(upload: NewUpload) -> UploadUrlOut:
    return UploadUrlOut(
        uploadUrl=upload.upload_url,
        key=upload.key,
        videoId=upload.video_id,
        contentType=upload.content_type,
        expiresAt=upload.expires_at_ms,
    )


@router.post(
    "/upload-url",
    status_code=201,
    summary="Presign one PUT for a video up to the multipart threshold",
    responses=openapi_errors(400, 413),
)
def upload_url(body: UploadRequest, caller: CallerDep, services: ServicesDep) -> UploadUrlOut:
    """Create the video's row and a presigned PUT bound to its content type and length."""
    _admit(body, caller, services, single=True)
    return _url_out(_start(services.uploads.start_single, body, caller))


def _admit(body: UploadRequest, caller: CallerDep, services: ServicesDep, *, single: bool) -> None:
    """Check the request, then charge the caller's limits: refused input uses no quota."""
    try:
        services.uploads.validate(
            filename=body.filename, content_type=body.contentType, size=body.size, single=single
        )
        services.limits.start_upload(user_id=caller.user_id, ip=caller.ip, size_bytes=body.size)
    except UploadRejected as exc:
        raise api_error(exc) from exc


def _start(start: Callable[..., Started], body: UploadRequest, caller: CallerDep) -> Started:
    """Create the video's row and the upload (``start_single`` or ``start_multipart``)."""
    try:
        return start(
            owner=caller.user_id,
            filename=body.filename,
            content_type=body.contentType,
            size=body.size,
        )
    except (UploadRejected, StorageUnavailable) as exc:
        raise api_error(exc) from exc


@router.post(
    "/multipart",
    status_code=201,
    summary="Create a multipart upload and plan its parts",
    responses=openapi_errors(400, 413, 502),
)
def create_multipart(body: UploadRequest, caller: CallerDep, services: ServicesDep) -> MultipartOut:
    """Create the video's row and the multipart upload; parts are equal, at least 5 MiB."""
    _admit(body, caller, services, single=False)
    upload = _start(services.uploads.start_multipart, body, caller)
    return MultipartOut(
        uploadId=upload.upload_id,
        key=upload.key,
        videoId=upload.video_id,
        contentType=upload.content_type,
        partSize=upload.plan.part_size,
        partCount=upload.plan.part_count,
        expiresAt=upload.expires_at_ms,
    )


def _find(
    services: ServicesDep, upload_id: str, caller: CallerDep, key: str | None = None
) -> MultipartUpload:
    try:
        return services.uploads.find_multipart(upload_id, owner=caller.user_id, key=key)
    except UploadRejected as exc:
        raise api_error(exc) from exc


@router.post(
    "/multipart/{upload_id}/part-urls",
    summary="Presign UploadPart URLs",
    responses=openapi_errors(400, 404),
)
def part_urls(
    upload_id: str, body: PartUrlsRequest, caller: CallerDep, services: ServicesDep
) -> PartUrlsOut:
    """Presigned URLs for the given parts, each bound to its planned length."""
    upload = _find(services, upload_id, caller)
    try:
        urls = services.uploads.part_urls(upload, sorted(set(body.partNumbers)))
    except UploadRejected as exc:
        raise api_error(exc) from exc
    return PartUrlsOut(
        key=upload.key,
        parts=[
            PartUrl(partNumber=n, url=url, size=upload.plan.part_length(n))
            for n, url in urls.items()
        ],
    )


@router.get(
    "/multipart/{upload_id}/parts",
    summary="List the parts already uploaded (resume)",
    responses=openapi_errors(404, 502),
)
def list_parts(
    upload_id: str,
    caller: CallerDep,
    services: ServicesDep,
    key: Annotated[str | None, Query(description="must be the upload's key if given")] = None,
) -> PartsOut:
    """ListParts for the caller's upload."""
    upload = _find(services, upload_id, caller, key)
    try:
        parts = services.uploads.uploaded_parts(upload)
    except (UploadRejected, StorageUnavailable) as exc:
        raise api_error(exc) from exc
    return PartsOut(
        key=upload.key,
        videoId=upload.video_id,
        partSize=upload.plan.part_size,
        partCount=upload.plan.part_count,
        parts=[StoredPart(**p) for p in parts],
    )


@router.post(
    "/multipart/{upload_id}/complete",
    summary="Complete a multipart upload",
    responses=openapi_errors(400, 404, 502),
)
def complete_multipart(
    upload_id: str, body: CompleteRequest, caller: CallerDep, services: ServicesDep
) -> CompleteOut:
    """Assemble the parts; the store then notifies the fleet as for any upload."""
    upload = _find(services, upload_id, caller)
    try:
        etag = services.uploads.complete(upload, [(p.partNumber, p.etag) for p in body.parts])
    except (UploadRejected, StorageUnavailable) as exc:
        raise api_error(exc) from exc
    return CompleteOut(key=upload.key, videoId=upload.video_id, etag=etag)


@router.delete(
    "/multipart/{upload_id}",
    status_code=204,
    summary="Abort a multipart upload",
    responses=openapi_errors(404, 502),
)
def abort_multipart(
    upload_id: str,
    caller: CallerDep,
    services: ServicesDep,
    key: Annotated[str | None, Query(description="must be the upload's key if given")] = None,
) -> Response:
    """Abort the upload (its stored parts are deleted) and mark the video deleted."""
    upload = _find(services, upload_id, caller, key)
    try:
        services.uploads.abort(upload)
    except (UploadRejected, StorageUnavailable) as exc:
        raise api_error(exc) from exc
    return Response(status_code=204)
