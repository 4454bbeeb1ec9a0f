"""Settings of the transports: production refuses an open webhook, bounds are enforced."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from schema.settings import Settings

PRODUCTION = {"environment": "production", "s3_secret_access_key": "a-real-secret"}


def test_production_refuses_a_webhook_without_authentication() -> None:
    with pytest.raises(ValidationError, match="the webhook has no authentication"):
        Settings(**PRODUCTION)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "auth",
    [
        {"webhook_token": "a-long-random-token"},
        {"webhook_hmac_secret": "a-long-random-secret"},
        {"webhook_access_client_id": "id.access", "webhook_access_client_secret": "s3cr3t-value"},
        {"webhook_enabled": False},
    ],
)
def test_production_starts_with_any_webhook_authentication_or_without_the_webhook(
    auth: dict[str, Any],
) -> None:
    Settings(**PRODUCTION, **auth)


def test_production_refuses_a_placeholder_webhook_token() -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_TOKEN is a placeholder"):
        Settings(**PRODUCTION, webhook_token="changeme")  # type: ignore[arg-type]


def test_an_access_client_id_needs_its_secret() -> None:
    with pytest.raises(ValidationError, match="go together"):
        Settings(webhook_access_client_id="id.access")


@pytest.mark.parametrize(
    "bad",
    [
        {"pull_batch_size": 0},
        {"pull_batch_size": 101},
        {"pull_retry_delay_s": 43_201},
        {"pull_visibility_timeout_ms": 43_200_001},
        {"pull_backoff_initial_s": 10, "pull_backoff_max_s": 5},
        {"pull_idle_initial_s": 10, "pull_idle_max_s": 5},
    ],
)
def test_pull_settings_out_of_range_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_the_api_base_url_defaults_to_cloudflare() -> None:
    assert Settings().cf_api_base_url == "https://api.cloudflare.com/client/v4"
