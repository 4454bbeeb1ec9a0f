"""Settings and clients for tests of the upload API: Access stand-in, own rate-limit keys."""

from __future__ import annotations

from typing import Any

from schema.settings import Settings
from tests.access_keys import AUD, TEAM_DOMAIN


def upload_settings(
    base: Settings, *, jwks_url: str, limits: tuple[str, str], **overrides: Any
) -> Settings:
    """``base`` plus a configured Access (local JWKS) and this test's rate-limit keys."""
    redis_url, prefix = limits
    values: dict[str, Any] = {
        **base.model_dump(),
        "access_team_domain": TEAM_DOMAIN,
        "access_aud": AUD,
        "access_jwks_url": jwks_url,
        "rate_limit_redis_url": redis_url,
        "rate_limit_key_prefix": prefix,
    }
    values.update(overrides)
    return Settings(**values)


def bearer(token: str) -> dict[str, str]:
    """The header Access adds to every request it lets through."""
    return {"Cf-Access-Jwt-Assertion": token}
