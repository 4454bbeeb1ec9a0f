"""The upload page: static HTML, CSS and JavaScript served by the producer, no build step.

The page itself holds no data, so it is served without a token; Cloudflare Access guards the
whole hostname at the edge, and every API call the page makes is verified at the origin.
"""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from producer.uploads.policy import upload_types
from producer.web.conditional import etag_matches
from producer.web.deps import ResourcesDep

STATIC_DIR = Path(__file__).with_name("static")
ASSETS = {
    "upload.js": "text/javascript; charset=utf-8",
    "upload.css": "text/css; charset=utf-8",
}
# The page is small and changes with releases; let browsers revalidate (a 304) rather than cache.
NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["page"])


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    """Send visitors to the upload page."""
    return RedirectResponse("/upload", status_code=307)


@router.get("/upload", include_in_schema=False)
def upload_page(request: Request, resources: ResourcesDep) -> Response:
    """The upload page, with the video types the upload API takes written in."""
    types = upload_types(resources.settings.ingest_extensions)
    page = (
        (STATIC_DIR / "upload.html")
        .read_text("utf-8")
        .replace("{{extensions}}", html.escape(", ".join(types)))
        .replace("{{accept}}", html.escape(",".join([*sorted(set(types.values())), *types])))
        # In a <script> element only "</" could end it early; JSON may spell "<" as \u003c.
        .replace("{{types}}", json.dumps(types).replace("<", "\\u003c"))
    )
    etag = f'"{hashlib.sha256(page.encode()).hexdigest()[:32]}"'
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"ETag": etag, **NO_CACHE})
    return HTMLResponse(page, headers={"ETag": etag, **NO_CACHE})


@router.get("/static/{name}", include_in_schema=False)
def asset(name: str, request: Request) -> Response:
    """The page's script and style sheet (only these two names)."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, "not found")
    return _file(request, STATIC_DIR / name, media_type)


def _file(request: Request, path: Path, media_type: str) -> Response:
    """The file, or a 304 when the browser's copy is current (its ETag: mtime and size)."""
    response = FileResponse(path, media_type=media_type, headers=NO_CACHE, stat_result=path.stat())
    etag = response.headers["etag"]
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"ETag": etag, **NO_CACHE})
    return response
