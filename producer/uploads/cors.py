"""The bucket's CORS rules for direct browser uploads, in both shapes Cloudflare takes.

Browsers PUT files (and multipart parts) straight to the bucket from the upload page's origin,
so the bucket must allow exactly those origins, the methods the page uses (PUT for uploads, GET
and HEAD for thumbnails and the video), the ``content-type`` header bound into the signature,
and must expose ``ETag``, which the page reads from every part to complete a multipart upload.

- S3 shape (``aws s3api put-bucket-cors``, boto3 ``put_bucket_cors``, R2 dashboard JSON):
  ``{"CORSRules": [{"AllowedOrigins": [...], ...}]}``
- Cloudflare API / wrangler shape (``wrangler r2 bucket cors set <bucket> --file f.json``):
  ``{"rules": [{"allowed": {"origins": [...], ...}, "exposeHeaders": [...], ...}]}``

``videofleet cors`` prints either, writes both to ``deploy/cors/``, or applies the S3 shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from schema.settings import Settings
from schema.storage import make_s3_client

METHODS = ("PUT", "GET", "HEAD")
HEADERS = ("content-type",)
EXPOSE = ("ETag",)
RULE_ID = "videofleet-browser-uploads"
S3_FILE = "cors.s3.json"
WRANGLER_FILE = "cors.wrangler.json"


def _origins(settings: Settings) -> list[str]:
    if not settings.upload_allowed_origins:
        raise click.UsageError(
            "UPLOAD_ALLOWED_ORIGINS is empty: set the upload page's origin(s), "
            "e.g. https://videos.example.com"
        )
    return list(settings.upload_allowed_origins)


def s3_cors(settings: Settings) -> dict[str, Any]:
    """The rules in S3's ``PutBucketCors`` shape."""
    return {
        "CORSRules": [
            {
                "ID": RULE_ID,
                "AllowedOrigins": _origins(settings),
                "AllowedMethods": list(METHODS),
                "AllowedHeaders": list(HEADERS),
                "ExposeHeaders": list(EXPOSE),
                "MaxAgeSeconds": settings.cors_max_age_s,
            }
        ]
    }


def wrangler_cors(settings: Settings) -> dict[str, Any]:
    """The same rules in the Cloudflare API's shape, which ``wrangler r2 bucket cors set`` reads."""
    return {
        "rules": [
            {
                "id": RULE_ID,
                "allowed": {
                    "origins": _origins(settings),
                    "methods": list(METHODS),
                    "headers": list(HEADERS),
                },
                "exposeHeaders": list(EXPOSE),
                "maxAgeSeconds": settings.cors_max_age_s,
            }
        ]
    }


def render(document: dict[str, Any]) -> str:
    """The JSON text of a rules document, as the files under ``deploy/cors/`` hold it."""
    return json.dumps(document, indent=2) + "\n"


def apply(settings: Settings, *, bucket: str | None = None) -> dict[str, Any]:
    """Put the S3-shaped rules on the bucket with ``put_bucket_cors``; return what was put."""
    document = s3_cors(settings)
    s3 = make_s3_client(settings)
    try:
        s3.put_bucket_cors(
            Bucket=bucket or settings.s3_bucket,
            CORSConfiguration=document,  # type: ignore[arg-type]
        )
    finally:
        s3.close()
    return document


@click.command("cors")
@click.option(
    "--format",
    "shape",
    type=click.Choice(["s3", "wrangler"]),
    default="s3",
    show_default=True,
    help="Which JSON shape to print.",
)
@click.option(
    "--write",
    "write_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write both shapes into this directory (e.g. deploy/cors) instead of printing.",
)
@click.option("--apply", "do_apply", is_flag=True, help="Put the rules on S3_BUCKET (boto3).")
@click.pass_obj
def cors(settings: Settings, shape: str, write_dir: Path | None, do_apply: bool) -> None:
    """Render (or apply) the bucket CORS rules for UPLOAD_ALLOWED_ORIGINS."""
    if do_apply:
        try:
            apply(settings)
        except (BotoCoreError, ClientError) as exc:
            message = f"could not set CORS on {settings.s3_bucket}: {exc}"
            raise click.ClickException(message) from exc
        click.echo(f"CORS rules set on {settings.s3_bucket} for {', '.join(_origins(settings))}")
        return
    if write_dir is not None:
        write_dir.mkdir(parents=True, exist_ok=True)
        (write_dir / S3_FILE).write_text(render(s3_cors(settings)))
        (write_dir / WRANGLER_FILE).write_text(render(wrangler_cors(settings)))
        click.echo(f"wrote {write_dir / S3_FILE} and {write_dir / WRANGLER_FILE}")
        return
    click.echo(render(s3_cors(settings) if shape == "s3" else wrangler_cors(settings)), nl=False)
