"""Cloudflare Access at the origin: verify the ``Cf-Access-Jwt-Assertion`` JWT on every request.

Access signs a JWT (RS256) for each request it lets through; the origin must check it itself
(signature, audience, issuer, expiry), because anything that reaches the origin another way
could send the header too. Keys come from the team's JWKS (``/cdn-cgi/access/certs``), cached
and fetched again when a token names an unknown key id, which is what happens after Access
rotates its keys (every six weeks).

Use it in any router: ``identity: AccessIdentityDep``. Outcomes: no header → 401
"Unauthorized"; a bad or expired token → 403 "Invalid token"; Access not configured → 503 with
the variables to set. ``ACCESS_DISABLED=true`` (refused in production) skips the check for
local development and answers as the user ``local-development``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request

from producer.web.deps import get_resources
from producer.web.errors import ApiError
from schema.settings import Settings

logger = logging.getLogger(__name__)

HEADER = "Cf-Access-Jwt-Assertion"
CERTS_PATH = "/cdn-cgi/access/certs"
USER_AGENT = "videofleet/0.1 (+https://github.com/videofleet/videofleet)"
JWKS_TIMEOUT_S = 10
DEVELOPMENT_USER = "local-development"
_REQUIRED_CLAIMS = ["exp", "iat", "aud", "iss"]
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class AccessIdentity:
    """Who is calling: a person (``sub``) or a service token (``common_name``)."""

    user_id: str
    email: str | None = None
    service_token: bool = False


class AccessDenied(ApiError):
    """Raised when a request has no Access token (401) or an invalid one (403)."""


class AccessVerifier:
    """Checks Access JWTs against the team's keys, audience and issuer."""

    def __init__(
        self,
        *,
        team_domain: str,
        audience: str,
        jwks_url: str = "",
        leeway_s: int = 30,
        jwks_lifespan_s: int = 3600,
        jwks_refetch_cooldown_s: float = 30.0,
    ) -> None:
        self.issuer = team_domain.rstrip("/")
        self.audience = audience
        self.leeway_s = leeway_s
        # PyJWKClient caches the key set for `lifespan` seconds and refetches it once when a
        # token's kid is not in it, at most once per cooldown (so forged kids cannot make us
        # hammer the certs endpoint); urllib's default User-Agent is blocked by some WAFs.
        self._jwks = jwt.PyJWKClient(
            jwks_url or f"{self.issuer}{CERTS_PATH}",
            cache_jwk_set=True,
            lifespan=jwks_lifespan_s,
            cooldown_duration=jwks_refetch_cooldown_s,
            headers={"User-Agent": USER_AGENT},
            timeout=JWKS_TIMEOUT_S,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessVerifier:
        """The verifier ``settings`` describe (which must name a team domain and audience)."""
        return cls(
            team_domain=settings.access_team_domain,
            audience=settings.access_aud,
            jwks_url=settings.access_jwks_url,
            leeway_s=settings.access_leeway_s,
            jwks_lifespan_s=settings.access_jwks_lifespan_s,
            jwks_refetch_cooldown_s=settings.access_jwks_refetch_cooldown_s,
        )

    def verify(self, token: str) -> AccessIdentity:
        """Return the caller ``token`` names.

        Raises:
            AccessDenied: the token is malformed, signed by an unknown key, expired, or for
                another audience or issuer (403).
            ApiError: the key set could not be fetched (503).
        """
        try:
            key = self._jwks.get_signing_key_from_jwt(token).key
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.PyJWKClientConnectionError as exc:
            logger.error("Access: cannot fetch the signing keys: %s", exc)
            raise ApiError(
                503, "access_keys_unavailable", "Cannot fetch Cloudflare Access signing keys"
            ) from exc
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as exc:
            logger.info("Access: token refused: %s", exc)
            raise AccessDenied(403, "invalid_token", "Invalid token") from exc
        return identity_from_claims(claims)


def identity_from_claims(claims: dict[str, Any]) -> AccessIdentity:
    """A person's id is ``sub``; a service token has an empty ``sub`` and its ``common_name``.

    Raises:
        AccessDenied: the token names neither.
    """
    subject = str(claims.get("sub") or "")
    if subject:
        email = claims.get("email")
        return AccessIdentity(user_id=subject, email=str(email) if email else None)
    common_name = str(claims.get("common_name") or "")
    if common_name:
        return AccessIdentity(user_id=common_name, service_token=True)
    raise AccessDenied(403, "invalid_token", "Invalid token")


def _verifier(request: Request, settings: Settings) -> AccessVerifier:
    """The app's verifier, made on first use so that nothing is fetched before a request."""
    state = request.app.state
    verifier: AccessVerifier | None = getattr(state, "access_verifier", None)
    if verifier is None:
        with _lock:
            verifier = getattr(state, "access_verifier", None)
            if verifier is None:
                verifier = AccessVerifier.from_settings(settings)
                state.access_verifier = verifier
    return verifier


def authenticate(request: Request) -> AccessIdentity:
    """FastAPI dependency: the verified caller of ``request`` (see the module docstring).

    Raises:
        AccessDenied: 401 without a token, 403 with an invalid one.
        ApiError: 503 when Access is neither configured nor explicitly disabled.
    """
    settings = get_resources(request).settings
    if settings.access_disabled:
        return AccessIdentity(user_id=DEVELOPMENT_USER)
    if not (settings.access_team_domain and settings.access_aud):
        raise ApiError(
            503,
            "access_not_configured",
            "Cloudflare Access is not configured: set ACCESS_TEAM_DOMAIN and ACCESS_AUD "
            "(or ACCESS_DISABLED=true for local development only)",
        )
    token = request.headers.get(HEADER, "").strip()
    if not token:
        raise AccessDenied(401, "unauthorized", "Unauthorized")
    return _verifier(request, settings).verify(token)


AccessIdentityDep = Annotated[AccessIdentity, Depends(authenticate)]
