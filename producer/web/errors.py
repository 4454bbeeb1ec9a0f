"""One JSON error shape for the upload API: ``{"error": {"code": ..., "message": ...}}``.

Routers opt in with ``APIRouter(route_class=ErrorRoute)``; the route turns an ``ApiError``
(raised by a handler or a dependency) and FastAPI's request validation errors into that shape,
so ``app.py`` needs no exception handlers. ``ApiError`` is an ``HTTPException``, so a router that
does not opt in still answers with the right status code (as ``{"detail": message}``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from schema.errors import StorageUnavailable, UploadRejected

# The HTTP status of each policy refusal (schema.errors.UploadRejected.code).
REJECTION_STATUS: Mapping[str, int] = {
    "file_too_large": 413,
    "use_multipart": 413,
    "not_found": 404,
}
DEFAULT_REJECTION_STATUS = 400


class ApiError(HTTPException):
    """Raised by handlers and dependencies to answer with a JSON error and status code."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=dict(headers or {}))
        self.code = code
        self.message = message


def api_error(exc: UploadRejected | StorageUnavailable) -> ApiError:
    """The API error for a policy refusal (4xx) or a failing object store (502)."""
    if isinstance(exc, StorageUnavailable):
        return ApiError(502, "storage_error", "The object store failed; try again")
    status = REJECTION_STATUS.get(exc.code, DEFAULT_REJECTION_STATUS)
    return ApiError(status, exc.code, str(exc))


def error_response(
    status_code: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The response body every error of the upload API has."""
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status_code,
        headers=dict(headers or {}),
    )


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        problems.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(problems) or "invalid request"


class ErrorRoute(APIRoute):
    """An ``APIRoute`` that renders ``ApiError`` and validation errors as the JSON error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler, which also resolves the dependencies, in the error mapping."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(exc.status_code, exc.code, exc.message, exc.headers)
            except RequestValidationError as exc:
                return error_response(422, "invalid_request", _validation_message(exc))

        return handle


def openapi_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry documenting the JSON error shape for ``statuses`` in OpenAPI."""
    schema = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                "required": ["code", "message"],
            }
        },
    }
    return {
        status: {"description": "Error", "content": {"application/json": {"schema": schema}}}
        for status in statuses
    }
