"""`pyctl model push`: upload a model directory to the env's model-cache bucket(s)."""

from __future__ import annotations

from pathlib import Path

import click

from pyctl.core.models import DEFAULT_CONCURRENCY, BucketRef
from pyctl.errors import PyctlError


@click.group()
def model() -> None:
    """Model cache: push models that nodes fetch with `pyctl-agent fetch-model`."""


def cache_buckets(env: str, cloud: str | None) -> list[tuple[BucketRef, str | None]]:
    """The env's model-cache buckets (with the AWS region), optionally only one cloud's."""
    from pyctl.spec import load_env

    spec = load_env(env).spec
    found: list[tuple[BucketRef, str | None]] = []
    if spec.model_cache.aws is not None and cloud in (None, "aws"):
        region = spec.clouds.aws.region if spec.clouds.aws is not None else None
        found.append((BucketRef("aws", spec.model_cache.aws.bucket, ""), region))
    if spec.model_cache.gcp is not None and cloud in (None, "gcp"):
        found.append((BucketRef("gcp", spec.model_cache.gcp.bucket, ""), None))
    if not found:
        where = f"model_cache.{cloud}" if cloud else "model_cache.aws or model_cache.gcp"
        raise PyctlError(f"env {env!r} has no model cache bucket: set {where} in env.yaml")
    return found


@model.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name (the key segment under models/).")
@click.option(
    "--env", "env", required=True, help="Env name under infra/envs/ or a directory holding env.yaml."
)
@click.option(
    "--version", default=None, help="Version to create (default: the UTC push time, YYYYMMDDTHHMMSSZ)."
)
@click.option(
    "--cloud", type=click.Choice(["aws", "gcp"]), default=None, help="Push to one cloud's cache only."
)
@click.option(
    "--allow-pickle", is_flag=True, help="Upload pickle formats (.bin .pt .pth .pkl .ckpt) with a warning."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Parallel uploads (files and multipart parts).",
)
def push(
    source: Path,
    name: str,
    env: str,
    version: str | None,
    cloud: str | None,
    allow_pickle: bool,
    concurrency: int,
) -> None:
    """Upload the model in SOURCE to the env's cache as models/NAME/VERSION/, manifest last.

    Pickle formats are refused unless --allow-pickle: loading them runs arbitrary code.
    Versions are immutable: pushing an existing version is refused.
    """
    from datetime import UTC, datetime

    from pyctl import model_cache
    from pyctl.core.models import default_version

    def log(line: str) -> None:
        click.echo(line, err=True)

    now = datetime.now(UTC)  # one version and one manifest across clouds
    version = version or default_version(now)
    for ref, region in cache_buckets(env, cloud):
        store = model_cache.open_store(ref, region=region, concurrency=concurrency)
        log(f"pushing {name} version {version} to {ref.url()}")
        model_cache.push_model(store, source, name, version, allow_pickle=allow_pickle, log=log, now=now)
    click.echo(version)
