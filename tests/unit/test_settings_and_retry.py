"""Settings refuse unsafe combinations; failure messages are one human line."""

from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import ValidationError

from schema.errors import NotAVideo, StorageUnavailable
from schema.settings import Settings
from schema.status import Step
from workers.retry import failure_message, one_line


def test_embedded_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = Settings()
    assert settings.database_url.startswith("sqlite")
    assert settings.retry_limit == 3
    assert settings.retry_delay_s == 30


def test_visibility_timeout_shorter_than_a_step_plus_backoff_is_refused() -> None:
    with pytest.raises(ValidationError, match="VISIBILITY_TIMEOUT_S"):
        Settings(visibility_timeout_s=600, step_time_limit_s=330, retry_backoff_max_s=600)


def test_soft_limit_must_be_below_the_hard_limit() -> None:
    with pytest.raises(ValidationError, match="STEP_SOFT_TIME_LIMIT_S"):
        Settings(step_soft_time_limit_s=400, step_time_limit_s=330)


def test_production_refuses_the_placeholder_secret() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment="production")
    assert (
        Settings(
            environment="production", s3_secret_access_key="a-real-one", webhook_enabled=False
        ).environment
        == "production"
    )


def test_malformed_numbers_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THUMBNAIL_COUNT", "many")
    with pytest.raises(ValidationError, match="thumbnail_count"):
        Settings()


def test_failure_messages_name_the_step_and_the_reason() -> None:
    assert (
        failure_message(
            Step.VALIDATE, NotAVideo("the object is empty (0 bytes)", video_key="k"), retries=0
        )
        == "validate-video: the object is empty (0 bytes)"
    )
    assert failure_message(Step.THUMBNAILS, StorageUnavailable("down"), retries=3) == (
        "generate-thumbnails: gave up after 3 retries: down"
    )
    assert failure_message(Step.THUMBNAILS, SoftTimeLimitExceeded(), retries=3).endswith(
        "time limit exceeded"
    )
    assert failure_message(Step.UPDATE, KeyError("x"), retries=0).startswith(
        "update-database: internal error: KeyError"
    )


def test_one_line_folds_and_shortens() -> None:
    assert one_line(ValueError("a\n  b")) == "a b"
    assert len(one_line(ValueError("x" * 1000))) == 400
