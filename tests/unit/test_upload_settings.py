"""Settings of the upload side: Access safety, rate-limit Redis default."""

from __future__ import annotations

import pytest

from schema.changes import DEFAULT_RATE_LIMIT_DB, rate_limit_redis_url
from schema.settings import Settings


def test_rate_limits_default_to_the_brokers_redis_in_their_own_database() -> None:
    settings = Settings(broker_url="redis://:pw@redis.internal:6380/0")
    assert DEFAULT_RATE_LIMIT_DB == 2
    assert rate_limit_redis_url(settings) == "redis://:pw@redis.internal:6380/2"
    explicit = Settings(rate_limit_redis_url="redis://limits:6379/5")
    assert rate_limit_redis_url(explicit) == "redis://limits:6379/5"


def test_access_is_required_by_default_and_disabling_it_is_refused_in_production() -> None:
    assert Settings().access_disabled is False
    assert Settings(access_disabled=True).access_disabled is True
    with pytest.raises(ValueError, match="ACCESS_DISABLED=true is refused"):
        Settings(environment="production", access_disabled=True, s3_secret_access_key="real")


def test_the_team_domain_must_be_an_https_cloudflareaccess_url() -> None:
    with pytest.raises(ValueError, match="ACCESS_TEAM_DOMAIN"):
        Settings(access_team_domain="videofleet.cloudflareaccess.com")


def test_the_multipart_threshold_cannot_exceed_the_upload_limit() -> None:
    with pytest.raises(ValueError, match="MULTIPART_THRESHOLD_BYTES"):
        Settings(upload_max_bytes=10 * 1024 * 1024, multipart_threshold_bytes=20 * 1024 * 1024)
