"""`pyctl model push` / `pyctl model list`: the env's model-cache bucket(s)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from pyctl.completion import complete_env
from pyctl.core.models import DEFAULT_CONCURRENCY, BucketRef
from pyctl.errors import PyctlError


@click.group()
def model() -> None:
    """Model cache: push models that nodes fetch with `pyctl-agent fetch-model`."""


def cache_buckets(env: str, cloud: str | None, spec: Any = None) -> list[tuple[BucketRef, str | None]]:
    """The env's model-cache buckets (with the AWS region), optionally only one cloud's."""
    from pyctl.spec import load_env

    spec = spec or load_env(env).spec
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
    "--env",
    "env",
    required=True,
    help="Env name under infra/envs/ or a directory holding env.yaml.",
    shell_complete=complete_env,
)
@click.option(
    "--version", default=None, help="Version to create (default: the UTC push time, YYYYMMDDTHHMMSSZ)."
)
@click.option(
    "--cloud", type=click.Choice(["aws", "gcp"]), default=None, help="Push to one cloud's cache only."
)
@click.option(
    "--allow-pickle",
    is_flag=True,
    help=(
        "Also upload files outside the safe-format allow list (pickle-capable .bin .pt .pth .ckpt .pkl "
        ".pickle .joblib .npy .pt2 ..., or unknown formats), with a warning per file."
    ),
)
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="GLOB",
    help="Leave out files matching GLOB (path or file name; repeatable), e.g. --exclude '*.bin'.",
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
    excludes: tuple[str, ...],
    concurrency: int,
) -> None:
    """Upload the model in SOURCE to the env's cache as models/NAME/VERSION/, manifest last.

    Only known-safe formats go up (safetensors, gguf, json, txt, md, yaml, jinja, sentencepiece .model,
    .tiktoken, LICENSE/NOTICE/README): anything else is refused before anything is uploaded, unless
    --allow-pickle, because loading a pickle-capable file runs arbitrary code. A Hugging Face download
    often holds both: --exclude '*.bin' pushes the safetensors.
    Versions are immutable: pushing an existing version is refused. Prints the version on stdout, and the
    env.yaml lines that make nodes fetch it on stderr. Exit 1 when a store fails (unreachable, no
    credentials, access denied), 130 on Ctrl-C (no manifest is written: the version does not exist).
    """
    from datetime import UTC, datetime

    from pyctl import model_cache
    from pyctl.clouds.store import open_store
    from pyctl.core.models import check_model_name, check_version, default_version
    from pyctl.spec import load_env

    def log(line: str) -> None:
        click.echo(line, err=True)

    loaded = load_env(env)
    check_model_name(name)
    now = datetime.now(UTC)  # one version and one manifest across clouds
    version = check_version(version) if version else default_version(now)
    buckets = cache_buckets(env, cloud, loaded.spec)
    # Refuse a bad directory before any store is opened or any byte is sent.
    model_cache.checked_model_files(source, exclude=excludes, allow_pickle=allow_pickle)
    for ref, region in buckets:
        try:
            store = open_store(ref, region=region, concurrency=concurrency)
            log(f"pushing {name} version {version} to {ref.url()}")
            model_cache.push_model(
                store,
                source,
                name,
                version,
                allow_pickle=allow_pickle,
                log=log,
                now=now,
                exclude=excludes,
                progress=_progress() if sys.stderr.isatty() else None,
            )
        except KeyboardInterrupt:
            from pyctl.agent.fetch_model import exit_interrupted

            exit_interrupted(
                f"pyctl model push: interrupted: no manifest written to {ref.url()}, "
                f"so {name} version {version} does not exist there; push it again"
            )
    click.echo(version)
    for line in env_yaml_snippet(loaded, name, version):
        log(line)


def env_yaml_snippet(loaded: Any, name: str, version: str) -> list[str]:
    """What to add to env.yaml so nodes fetch this version: the model_cache.models entry (or the version
    to change), and the pool's `model:`."""
    models = loaded.spec.model_cache.models
    pinned = next((i for i, m in enumerate(models) if m.name == name), None)
    if pinned is not None:
        head = [
            f"To serve it, set in {loaded.path}:",
            f'  model_cache.models[{pinned}].version: "{version}"   (now "{models[pinned].version}")',
        ]
    else:
        head = [
            f"To serve it, add to {loaded.path} under model_cache.models:",
            f"    - name: {name}",
            f'      version: "{version}"',
        ]
    users = [p.name for p in loaded.spec.pools if p.model == name]
    tail = (
        [f"  (pools already serving {name}: {', '.join(users)})"]
        if users
        else [f"and on the pool that serves it:  model: {name}"]
    )
    return [*head, *tail, f"then: pyctl plan --env {loaded.name}"]


def _progress() -> Any:
    """A byte progress bar on stderr (the fetch's columns), for a push run in a terminal."""
    import threading

    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    class Bar:
        def __init__(self) -> None:
            self._bar = Progress(
                "{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._lock = threading.Lock()
            self._task: Any = None

        def begin(self, name: str, version: str, total_bytes: int) -> None:
            self._bar.start()
            self._task = self._bar.add_task(f"{name} {version}", total=total_bytes)

        def advance(self, nbytes: int) -> None:
            with self._lock:
                self._bar.advance(self._task, nbytes)

        def end(self) -> None:
            self._bar.stop()

    return Bar()


@model.command("list")
@click.option(
    "--env",
    "env",
    required=True,
    help="Env name under infra/envs/ or a directory holding env.yaml.",
    shell_complete=complete_env,
)
@click.option(
    "--name", "names", multiple=True, help="Also list this model (repeatable): one not yet in env.yaml."
)
@click.option("--cloud", type=click.Choice(["aws", "gcp"]), default=None, help="One cloud's cache only.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(env: str, names: tuple[str, ...], cloud: str | None, as_json: bool) -> None:
    """The complete versions in the env's cache of every model env.yaml names (and --name), newest first,
    with the version env.yaml pins. Exit 1 when a pinned version is missing from a bucket."""
    from pyctl import model_cache
    from pyctl.clouds.store import open_store
    from pyctl.output import console, table
    from pyctl.spec import load_env

    loaded = load_env(env)
    pinned = {m.name: m.version for m in loaded.spec.model_cache.models}
    wanted = sorted(set(pinned) | set(names))
    if not wanted:
        raise PyctlError(f"{loaded.path}: model_cache.models is empty; name a model with --name")
    rows = []
    for ref, region in cache_buckets(env, cloud, loaded.spec):
        store = open_store(ref, region=region)
        for name in wanted:
            versions = sorted(
                model_cache.stored_versions(store, name), key=lambda v: (v.written, v.version), reverse=True
            )
            rows.append((ref, name, versions))
    missing = [
        (ref, name)
        for ref, name, versions in rows
        if name in pinned and pinned[name] not in {v.version for v in versions}
    ]
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "bucket": ref.url(),
                        "model": name,
                        "pinned": pinned.get(name),
                        "versions": [
                            {"version": v.version, "written": v.written.isoformat()} for v in versions
                        ],
                    }
                    for ref, name, versions in rows
                ],
                indent=2,
            )
        )
    else:
        tbl = table("bucket", "model", "version", "written", "env.yaml", copy="version")
        for ref, name, versions in rows:
            if not versions:
                tbl.add_row(
                    ref.url(), name, "-", "", "[red]pinned, not in the bucket[/]" if name in pinned else ""
                )
            for v in versions:
                mark = "pinned" if pinned.get(name) == v.version else ""
                tbl.add_row(ref.url(), name, v.version, v.written.strftime("%Y-%m-%d %H:%M UTC"), mark)
        console().print(tbl)
    if missing:
        what = ", ".join(f"{name}@{pinned[name]} in {ref.url()}" for ref, name in missing)
        raise PyctlError(
            f"pinned version(s) not in the cache: {what}; push them (pyctl model push)", exit_code=1
        )
