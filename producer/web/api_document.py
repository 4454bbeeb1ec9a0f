"""The API document: security schemes on every route, and the admin part for the admin only.

Each route checks its own credentials in its own dependency (Access JWT, admin basic auth, the
webhook's bearer/HMAC/service token); the ``Declared`` schemes below add nothing to that, they
only write the scheme into ``/openapi.json`` so that generated clients send the right header.

The public document (``/openapi.json``, ``/docs``) leaves out every ``/admin`` route; the full
one is ``/admin/openapi.json`` (and ``/admin/docs``), behind the admin's basic auth, throttled
like every admin login (404 when no admin is configured, as the rest of ``/admin``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.models import APIKey, APIKeyIn, HTTPBase, HTTPBearer, SecurityBase
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security.base import SecurityBase as SecurityScheme

from producer.web.admin import AdminDep
from producer.web.webhook_auth import ACCESS_SECRET_HEADER, SIGNATURE_HEADER

ADMIN_PREFIX = "/admin"
PUBLIC_PATH = "/openapi.json"
ADMIN_PATH = f"{ADMIN_PREFIX}/openapi.json"


class Declared(SecurityScheme):
    """A security scheme that only declares itself in the document; routes check for real."""

    def __init__(self, model: SecurityBase, scheme_name: str) -> None:
        self.model = model
        self.scheme_name = scheme_name

    async def __call__(self, request: Request) -> None:
        return None


ACCESS_JWT = Declared(
    APIKey(
        **{"in": APIKeyIn.header},
        name="Cf-Access-Jwt-Assertion",
        description="The JWT Cloudflare Access adds to every request it lets through.",
    ),
    "AccessJWT",
)
ADMIN_BASIC = Declared(
    HTTPBase(scheme="basic", description="ADMIN_USERNAME / ADMIN_PASSWORD."), "AdminBasic"
)
METRICS_BASIC = Declared(
    HTTPBase(scheme="basic", description="METRICS_BASIC_AUTH, when set."), "MetricsBasic"
)
WEBHOOK_BEARER = Declared(HTTPBearer(description="WEBHOOK_TOKEN."), "WebhookBearer")
WEBHOOK_HMAC = Declared(
    APIKey(
        **{"in": APIKeyIn.header},
        name=SIGNATURE_HEADER,
        description="sha256=<hex HMAC-SHA256 of the raw body with WEBHOOK_HMAC_SECRET>.",
    ),
    "WebhookHMAC",
)
WEBHOOK_SERVICE_TOKEN = Declared(
    APIKey(
        **{"in": APIKeyIn.header},
        name=ACCESS_SECRET_HEADER,
        description="An Access service token: this header with CF-Access-Client-Id.",
    ),
    "WebhookServiceToken",
)


def public_document(app: FastAPI) -> dict[str, Any]:
    """The document without the admin routes (and without schemas only they use)."""
    document = _full_document(app)
    document["paths"] = {
        path: item for path, item in document["paths"].items() if not path.startswith(ADMIN_PREFIX)
    }
    return document


def _full_document(app: FastAPI) -> dict[str, Any]:
    return get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )


router = APIRouter(include_in_schema=False)


@router.get(PUBLIC_PATH)
def openapi_public(request: Request) -> JSONResponse:
    """The API document for everyone: every route but the admin's."""
    return JSONResponse(public_document(request.app))


@router.get("/docs")
def docs_public() -> HTMLResponse:
    """Swagger UI over the public document."""
    return get_swagger_ui_html(openapi_url=PUBLIC_PATH, title="videofleet API")


@router.get(ADMIN_PATH)
def openapi_admin(request: Request, _admin: AdminDep) -> JSONResponse:
    """The whole API document, admin routes included: for the admin only."""
    return JSONResponse(_full_document(request.app))


@router.get(f"{ADMIN_PREFIX}/docs")
def docs_admin(_admin: AdminDep) -> HTMLResponse:
    """Swagger UI over the whole document (the browser sends the admin's credentials)."""
    return get_swagger_ui_html(openapi_url=ADMIN_PATH, title="videofleet API (admin)")
