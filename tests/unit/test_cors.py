"""The bucket CORS rules: both shapes from the settings, and the files under deploy/cors."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from producer.uploads.cors import S3_FILE, WRANGLER_FILE, render, s3_cors, wrangler_cors
from schema.settings import Settings

DEPLOY_CORS = Path(__file__).parents[2] / "deploy" / "cors"
EXAMPLE = Settings(upload_allowed_origins="https://videos.example.com")


def test_the_s3_shape_allows_the_origins_put_get_head_and_exposes_etag() -> None:
    settings = Settings(upload_allowed_origins="https://a.example.com,http://127.0.0.1:8000")
    [rule] = s3_cors(settings)["CORSRules"]
    assert rule["AllowedOrigins"] == ["https://a.example.com", "http://127.0.0.1:8000"]
    assert rule["AllowedMethods"] == ["PUT", "GET", "HEAD"]
    assert rule["AllowedHeaders"] == ["content-type"]
    assert rule["ExposeHeaders"] == ["ETag"]
    assert rule["MaxAgeSeconds"] == 3600


def test_the_wrangler_shape_says_the_same_in_cloudflares_field_names() -> None:
    [rule] = wrangler_cors(EXAMPLE)["rules"]
    [s3_rule] = s3_cors(EXAMPLE)["CORSRules"]
    assert rule["allowed"] == {
        "origins": s3_rule["AllowedOrigins"],
        "methods": s3_rule["AllowedMethods"],
        "headers": s3_rule["AllowedHeaders"],
    }
    assert rule["exposeHeaders"] == s3_rule["ExposeHeaders"]
    assert rule["maxAgeSeconds"] == s3_rule["MaxAgeSeconds"]


def test_the_deploy_files_are_what_videofleet_cors_renders_for_the_example_origin() -> None:
    assert (DEPLOY_CORS / S3_FILE).read_text() == render(s3_cors(EXAMPLE))
    assert (DEPLOY_CORS / WRANGLER_FILE).read_text() == render(wrangler_cors(EXAMPLE))
    assert json.loads((DEPLOY_CORS / S3_FILE).read_text())["CORSRules"]


def test_without_allowed_origins_no_rules_are_made() -> None:
    with pytest.raises(click.UsageError, match="UPLOAD_ALLOWED_ORIGINS is empty"):
        s3_cors(Settings())


@pytest.mark.parametrize("origin", ["https://a.example.com/", "https://a.example.com/page", "*"])
def test_an_origin_with_a_path_or_a_wildcard_is_refused(origin: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        Settings(upload_allowed_origins=origin)
