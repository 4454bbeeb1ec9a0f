"""The upload page: static HTML, CSS and JavaScript served by the producer, no build step.

The page itself holds no data, so it is served without a token; Cloudflare Access guards the
whole hostname at the edge, and every API call the page makes is verified at the origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from producer.web.conditional import etag_matches

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
def upload_page(request: Request) -> Response:
    """The upload page."""
    return _file(request, STATIC_DIR / "upload.html", "text/html; charset=utf-8")


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
