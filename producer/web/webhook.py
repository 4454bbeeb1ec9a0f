"""``POST /webhook/events``: event notifications pushed over HTTP.

Senders: a Queue consumer Worker forwarding its batches (``deploy/cloudflare``), MinIO's webhook
target, anything posting an S3 event document, or a person with ``curl``. Status codes:

==========  =============================================================================
202         accepted; the body lists each message's verdict and each event's outcome
            (a rejected message inside a batch is reported here and recorded, not failed:
            a non-2xx would make the Worker resend the whole batch)
202         ``s3:TestEvent`` (AWS, on configuration): ignored
400         the request is not JSON, not a known shape, or a single invalid notification
            (recorded in ``rejected_events``); ``{"error": ..., "message": ...}``
401 / 403   no credentials / wrong credentials (see ``webhook_auth``)
429         too many wrong credentials from this IP (``Retry-After``; see ``ratelimit``)
404         the webhook is disabled (``WEBHOOK_ENABLED=false``)
413         body larger than ``WEBHOOK_MAX_BODY_BYTES`` (declared or counted while reading)
503         database or broker unavailable, with ``Retry-After``: nothing was lost, resend
==========  =============================================================================

``HEAD /webhook/events`` answers 200 (MinIO checks liveness so before sending).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from producer.events.intake import Intake, MessageResult, Verdict
from producer.events.rejections import Rejection, RejectionLog
from producer.web.deps import Resources, ResourcesDep
from producer.web.envelope import Unpacked, parse_json, unpack
from producer.web.errors import ApiError
from producer.web.ratelimit import LoginThrottle, client_ip
from producer.web.webhook_auth import SIGNATURE_HEADER, AuthVerdict, check_headers, signature_ok
from schema.errors import InvalidEvent, TransientError
from schema.settings import Settings

logger = logging.getLogger(__name__)

SOURCE = "webhook"
PATH = "/webhook/events"

router = APIRouter(tags=["webhook"])


class _TooLarge(Exception):
    """Raised while reading a body that exceeds the configured limit."""


class _AsciiJSON(JSONResponse):
    """JSON with everything outside ASCII escaped, so that any text a sender wrote renders.

    A message id or reason may hold a lone surrogate (``"\\ud800"`` is valid JSON); UTF-8
    cannot encode it, and the default renderer would fail with a 500 after the batch was
    ingested. Escaped, it is echoed back exactly as it came.
    """

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


@router.head(PATH)
def webhook_liveness() -> Response:
    """MinIO's liveness probe: any answer means up; 200 says so plainly."""
    return Response(status_code=200)


@router.post(PATH, status_code=202)
async def receive_events(request: Request, resources: ResourcesDep) -> Response:
    """Ingest the notifications in the request body; see the module docstring for the codes."""
    settings = resources.settings
    if not settings.webhook_enabled:
        return _error(404, "disabled", "the webhook is disabled (WEBHOOK_ENABLED=false)")
    # Failed logins are throttled per IP, checked before the credentials (see ``ratelimit``).
    ip = client_ip(request, settings)
    throttle = resources.logins.webhook if settings.webhook_auth_configured else None
    if throttle is not None and (refused := await _throttle(throttle.check, ip, settings)):
        return refused
    verdict = check_headers(settings, request.headers)
    if verdict is AuthVerdict.MISSING:
        return _error(401, "unauthenticated", "credentials required", auth_challenge=True)
    if verdict is AuthVerdict.WRONG:
        return await _forbidden(throttle, ip, settings, "the credentials are not valid")
    limit = settings.webhook_max_body_bytes
    try:
        raw = await _read_body(request, limit)
    except _TooLarge:
        return _error(413, "too_large", f"the body exceeds {limit} bytes")
    except ValueError:
        return _error(400, "bad_content_length", "Content-Length is not a number")
    if verdict is AuthVerdict.NEEDS_BODY and not signature_ok(
        settings, request.headers.get(SIGNATURE_HEADER), raw
    ):
        return await _forbidden(throttle, ip, settings, "the signature does not match the body")
    return await run_in_threadpool(_handle, request, resources, raw)


async def _forbidden(
    throttle: LoginThrottle | None, ip: str, settings: Settings, message: str
) -> Response:
    """403 for wrong credentials, counted as a failed login (or the throttle's own refusal)."""
    if throttle is not None and (refused := await _throttle(throttle.count_failure, ip, settings)):
        return refused
    return _error(403, "forbidden", message)


async def _throttle(call: Callable[[str], None], ip: str, settings: Settings) -> Response | None:
    """Run a throttle call off the event loop; its refusal (429, or 503 without Redis) or None."""
    try:
        await run_in_threadpool(call, ip)
    except ApiError as exc:
        if exc.status_code == 429:
            response = _error(429, "rate_limited", exc.message)
            response.headers.update(exc.headers or {})
            return response
        return _unavailable(exc.message, settings.webhook_retry_after_s)
    return None


def _handle(request: Request, resources: Resources, raw: bytes) -> Response:
    log = _rejection_log(request, resources)
    try:
        unpacked = unpack(parse_json(raw), raw)
    except InvalidEvent as exc:
        return _reject(log, raw, str(exc), resources.settings.webhook_retry_after_s)
    if unpacked.ignored:
        logger.info("Webhook: ignored an %s", unpacked.ignored)
        return _AsciiJSON({"ignored": unpacked.ignored, "messages": []}, status_code=202)
    intake = Intake(
        resources.engine,
        resources.publisher,
        log,
        source=SOURCE,
        rules=resources.rules,
        storage=resources.s3,
    )
    try:
        results = intake.take(unpacked.messages)
    except TransientError as exc:
        return _unavailable(str(exc), resources.settings.webhook_retry_after_s)
    retry = [r for r in results if r.verdict is Verdict.RETRY]
    if retry:
        reason = retry[0].reason or "unavailable"
        return _unavailable(reason, resources.settings.webhook_retry_after_s)
    if not unpacked.batch and results[0].verdict is Verdict.REJECTED:
        return _error(400, "invalid_event", results[0].reason or "invalid")
    return _AsciiJSON(_report(unpacked, results), status_code=202)


def _reject(log: RejectionLog, raw: bytes, reason: str, retry_after_s: int) -> Response:
    try:
        log.record([Rejection(SOURCE, reason, raw)])
    except TransientError as exc:
        return _unavailable(str(exc), retry_after_s)
    return _error(400, "invalid_request", reason)


def _report(unpacked: Unpacked, results: list[MessageResult]) -> dict[str, Any]:
    messages = []
    for result in results:
        entry: dict[str, Any] = {"id": result.message_id, "status": result.verdict.value}
        if result.verdict is Verdict.REJECTED:
            entry["reason"] = result.reason
        else:
            entry["events"] = [
                {
                    "task_id": o.task_id,
                    "key": o.key,
                    "result": o.result.value,
                    "workflow_id": o.workflow_id,
                }
                for o in result.outcomes
            ]
        messages.append(entry)
    return {
        "accepted": sum(r.verdict is Verdict.ACCEPTED for r in results),
        "rejected": sum(r.verdict is Verdict.REJECTED for r in results),
        "messages": messages,
    }


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limit:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def _rejection_log(request: Request, resources: Resources) -> RejectionLog:
    # One log per app, so its counts cover the process's lifetime.
    log: RejectionLog | None = getattr(request.app.state, "webhook_rejections", None)
    if log is None:
        log = RejectionLog(resources.engine)
        request.app.state.webhook_rejections = log
    return log


def _unavailable(reason: str, retry_after_s: int) -> Response:
    logger.warning("Webhook: answering 503, sender should retry: %s", reason)
    response = _error(503, "unavailable", f"{reason}; nothing was lost, retry later")
    response.headers["Retry-After"] = str(retry_after_s)
    return response


def _error(status: int, error: str, message: str, *, auth_challenge: bool = False) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if auth_challenge else None
    return _AsciiJSON({"error": error, "message": message}, status_code=status, headers=headers)
