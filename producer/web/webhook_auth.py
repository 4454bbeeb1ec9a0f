"""Who may post to the webhook: a bearer token, an HMAC signature, or an Access service token.

Any configured method that succeeds lets the request in:

- ``Authorization: Bearer <WEBHOOK_TOKEN>``: a shared secret; MinIO's ``auth_token`` is sent so.
- ``X-Videofleet-Signature: sha256=<hex>``: HMAC-SHA256 of the raw body with
  ``WEBHOOK_HMAC_SECRET`` (the body must be read first, so this is checked after the others).
- ``CF-Access-Client-Id`` + ``CF-Access-Client-Secret``: a Cloudflare Access service token, as a
  forwarding Worker sends it (also checked at the origin, in case Access is bypassed).

No credentials at all is 401, credentials that match nothing 403. Every comparison is
constant-time. With no method configured (development only: production refuses to start) every
request is let in.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from enum import StrEnum

from schema.settings import Settings

SIGNATURE_HEADER = "x-videofleet-signature"
ACCESS_ID_HEADER = "cf-access-client-id"
ACCESS_SECRET_HEADER = "cf-access-client-secret"  # noqa: S105  (a header name)
SIGNATURE_PREFIX = "sha256="
CREDENTIAL_HEADERS = ("authorization", SIGNATURE_HEADER, ACCESS_ID_HEADER, ACCESS_SECRET_HEADER)


class AuthVerdict(StrEnum):
    """The outcome of checking a request's headers."""

    ALLOWED = "allowed"
    NEEDS_BODY = "needs_body"  # a signature to verify against the raw body
    MISSING = "missing"  # 401
    WRONG = "wrong"  # 403


def check_headers(settings: Settings, headers: Mapping[str, str]) -> AuthVerdict:
    """Decide what the headers alone say (``headers`` keys lower-case, as Starlette gives them)."""
    if not settings.webhook_auth_configured:
        return AuthVerdict.ALLOWED
    if _bearer_ok(settings, headers.get("authorization")) or _access_ok(settings, headers):
        return AuthVerdict.ALLOWED
    if settings.webhook_hmac_secret.get_secret_value() and SIGNATURE_HEADER in headers:
        return AuthVerdict.NEEDS_BODY
    if any(name in headers for name in CREDENTIAL_HEADERS):
        return AuthVerdict.WRONG
    return AuthVerdict.MISSING


def signature_ok(settings: Settings, header: str | None, body: bytes) -> bool:
    """Whether ``header`` is ``sha256=<hex HMAC-SHA256 of body>`` under the configured secret."""
    secret = settings.webhook_hmac_secret.get_secret_value()
    if not secret or header is None:
        return False
    presented = header.strip()
    if presented[: len(SIGNATURE_PREFIX)].lower() != SIGNATURE_PREFIX:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return _equal(presented[len(SIGNATURE_PREFIX) :].lower(), expected)


def sign(secret: str, body: bytes) -> str:
    """The signature header value a sender computes (documentation, tests, the benchmark)."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _bearer_ok(settings: Settings, header: str | None) -> bool:
    token = settings.webhook_token.get_secret_value()
    if not token or header is None:
        return False
    scheme, _, value = header.strip().partition(" ")
    return scheme.lower() == "bearer" and _equal(value.strip(), token)


def _access_ok(settings: Settings, headers: Mapping[str, str]) -> bool:
    client_id = settings.webhook_access_client_id
    secret = settings.webhook_access_client_secret.get_secret_value()
    if not client_id or not secret:
        return False
    presented_id = headers.get(ACCESS_ID_HEADER)
    presented_secret = headers.get(ACCESS_SECRET_HEADER)
    if presented_id is None or presented_secret is None:
        return False
    # Both compared, always, so the time taken does not reveal which one was wrong.
    id_ok = _equal(presented_id, client_id)
    secret_ok = _equal(presented_secret, secret)
    return id_ok and secret_ok


def _equal(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())
