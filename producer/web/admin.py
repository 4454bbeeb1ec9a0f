"""The admin API and page: find tasks, look at one, requeue one or all that match.

Everything under ``/admin`` needs HTTP basic auth against ``ADMIN_USERNAME``/``ADMIN_PASSWORD``
(compared in constant time); without configured credentials the whole prefix answers 404, as if
it did not exist. Wrong credentials are counted per client IP; over
``RATE_LIMIT_ADMIN_AUTH_FAILURES_PER_IP_PER_HOUR`` the IP gets 429 with ``Retry-After``. The
page at ``/admin/`` is one static HTML file whose script calls this API with the credentials the
browser already holds for the page.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
from importlib import resources as package_files
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from producer.ops import requeue
from producer.ops.taskquery import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    TaskFilter,
    count_by_status,
    find_tasks,
    get_task,
    parse_age,
)
from producer.web.deps import ResourcesDep
from producer.web.ratelimit import client_ip
from schema.errors import BrokerUnavailable
from schema.settings import Settings
from schema.status import TaskStatus

logger = logging.getLogger(__name__)

REALM = "videofleet admin"
MAX_BULK = 1000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

router = APIRouter(prefix="/admin", tags=["admin"], include_in_schema=True)
_basic = HTTPBasic(realm=REALM, auto_error=False)


def credentials_match(settings: Settings, credentials: HTTPBasicCredentials | None) -> bool:
    """Whether ``credentials`` are the configured admin's; both parts always compared."""
    if credentials is None:
        return False
    user_ok = hmac.compare_digest(credentials.username.encode(), settings.admin_username.encode())
    password_ok = hmac.compare_digest(
        credentials.password.encode(), settings.admin_password.get_secret_value().encode()
    )
    return user_ok and password_ok


async def require_admin(resources: ResourcesDep, request: Request) -> str:
    """FastAPI dependency: the admin's user name, or 404 (admin disabled) / 401 (not the admin).

    Disabled is checked first, so that without credentials nothing under ``/admin`` answers
    anything but 404, whatever the request carries (a malformed header included).
    """
    if not resources.settings.admin_enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    # Failed logins are throttled per IP (429 with Retry-After, before anything is checked);
    # a request without credentials is how a browser asks for the prompt, and is not counted.
    throttle = resources.logins.admin
    ip = client_ip(request, resources.settings)
    await run_in_threadpool(throttle.check, ip)
    try:
        credentials = await _basic(request)  # a malformed header is a 401 with the challenge
    except HTTPException:
        await run_in_threadpool(throttle.count_failure, ip)
        raise
    if not credentials_match(resources.settings, credentials):
        if credentials is not None:
            await run_in_threadpool(throttle.count_failure, ip)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "admin credentials required",
            headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
        )
    assert credentials is not None
    # Browsers send cached basic-auth credentials with requests other sites trigger; refuse
    # changes such a request asks for (browsers label them, API clients send no such header).
    if request.method not in SAFE_METHODS and request.headers.get("sec-fetch-site") in (
        "cross-site",
        "same-site",
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site requests may not change tasks")
    return credentials.username


AdminDep = Annotated[str, Depends(require_admin)]


class FilterParams(BaseModel):
    """Task filters as the API takes them (ages as text: ``90s``, ``15m``, ``1h``, ``2d``)."""

    status: list[TaskStatus] = Field(default_factory=list)
    older_than: str | None = None
    newer_than: str | None = None
    key_prefix: str | None = None
    error_contains: str | None = None

    def to_filter(self) -> TaskFilter:
        """The ``TaskFilter``; a malformed age is a 422 naming it."""
        try:
            older = parse_age(self.older_than) if self.older_than else None
            newer = parse_age(self.newer_than) if self.newer_than else None
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        return TaskFilter(
            statuses=tuple(self.status),
            older_than_s=older,
            newer_than_s=newer,
            key_prefix=self.key_prefix or None,
            error_contains=self.error_contains or None,
        )


class RequeueBody(BaseModel):
    """How to requeue one task."""

    from_start: bool = False
    force: bool = False
    reason: str | None = Field(default=None, max_length=500)


class BulkRequeueBody(FilterParams, RequeueBody):
    """Requeue every task matching the filters (``failed`` when no status is named)."""

    limit: int = Field(default=100, ge=1, le=MAX_BULK)
    dry_run: bool = False


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def admin_page(_admin: AdminDep) -> HTMLResponse:
    """The admin page (static HTML and script; no build step)."""
    page = package_files.files("producer.web").joinpath("static/admin.html").read_text("utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("", include_in_schema=False)
def admin_redirect(_admin: AdminDep) -> RedirectResponse:
    """``/admin`` → ``/admin/``."""
    return RedirectResponse("/admin/")


@router.get("/api/tasks")
def list_tasks(
    resources: ResourcesDep,
    _admin: AdminDep,
    params: Annotated[FilterParams, Query()],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Tasks matching the filters, most recently changed first, and counts per status.

    The counts apply every filter except the status, so a page can show all statuses at once.
    """
    task_filter = params.to_filter()
    without_status = dataclasses.replace(task_filter, statuses=())
    with resources.engine.connect() as conn:
        views = find_tasks(conn, task_filter, limit=limit)
        counts = count_by_status(conn, without_status)
    return {"counts": counts, "tasks": [v.as_dict() for v in views], "limit": limit}


@router.get("/api/tasks/{task_id}")
def show_task(resources: ResourcesDep, _admin: AdminDep, task_id: str) -> dict[str, Any]:
    """One task with its metadata."""
    with resources.engine.connect() as conn:
        view = get_task(conn, task_id)
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task {task_id}")
    return view.as_dict()


@router.post("/api/tasks/{task_id}/requeue")
def requeue_one(
    resources: ResourcesDep, admin: AdminDep, task_id: str, body: RequeueBody | None = None
) -> dict[str, Any]:
    """Requeue one task: 404 unknown, 409 refused (with the reason), 503 broker down."""
    body = body or RequeueBody()
    request = requeue.Request(
        by=admin, reason=body.reason, from_start=body.from_start, force=body.force
    )
    try:
        outcome = requeue.requeue_task(resources.engine, resources.publisher, task_id, request)
    except BrokerUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    if outcome.result is requeue.Result.NOT_FOUND:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task {task_id}")
    if outcome.result is requeue.Result.REFUSED:
        raise HTTPException(status.HTTP_409_CONFLICT, outcome.detail)
    return outcome.as_dict()


@router.post("/api/requeue")
def requeue_matching(
    resources: ResourcesDep, admin: AdminDep, body: BulkRequeueBody
) -> dict[str, Any]:
    """Requeue up to ``limit`` tasks matching the filters, oldest first; ``dry_run`` only lists.

    A broker failure stops the run: 503, with the outcomes so far.
    """
    task_filter = body.to_filter()
    request = requeue.Request(
        by=admin,
        reason=body.reason,
        from_start=body.from_start,
        force=body.force,
        dry_run=body.dry_run,
    )
    ids = requeue.matching_ids(resources.engine, task_filter, limit=body.limit)
    outcomes: list[requeue.Outcome] = []
    try:
        requeue.requeue_many(
            resources.engine, resources.publisher, ids, request, on_each=outcomes.append
        )
    except BrokerUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            {"error": str(exc), "outcomes": [o.as_dict() for o in outcomes]},
        ) from exc
    summary: dict[str, int] = {}
    for outcome in outcomes:
        summary[outcome.result.value] = summary.get(outcome.result.value, 0) + 1
    logger.info("Admin %s requeued by filter: %s", admin, summary)
    return {"summary": summary, "outcomes": [o.as_dict() for o in outcomes]}
