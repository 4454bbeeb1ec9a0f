"""``videofleet cors``: render or apply the bucket's CORS rules for direct browser uploads."""

from __future__ import annotations

from pathlib import Path

import click
from botocore.exceptions import BotoCoreError, ClientError

from producer.uploads.cors import (
    S3_FILE,
    WRANGLER_FILE,
    allowed_origins,
    apply,
    render,
    s3_cors,
    wrangler_cors,
)
from schema.settings import Settings


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
        click.echo(
            f"CORS rules set on {settings.s3_bucket} for {', '.join(allowed_origins(settings))}"
        )
        return
    if write_dir is not None:
        write_dir.mkdir(parents=True, exist_ok=True)
        (write_dir / S3_FILE).write_text(render(s3_cors(settings)))
        (write_dir / WRANGLER_FILE).write_text(render(wrangler_cors(settings)))
        click.echo(f"wrote {write_dir / S3_FILE} and {write_dir / WRANGLER_FILE}")
        return
    click.echo(render(s3_cors(settings) if shape == "s3" else wrangler_cors(settings)), nl=False)
