"""`pyctl-agent fetch-model`: copy a cached model from S3 or GCS to local disk, verified and resumable."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from pyctl.core.manifest import FileEntry
from pyctl.core.models import DEFAULT_CONCURRENCY, MAX_AUTO_PART_SIZE, MIB, MIN_AUTO_PART_SIZE, parse_bucket
from pyctl.errors import PyctlError


class LogLines:
    """Progress for logs: one line per file on stderr (no control characters)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self._lock:
            click.echo(f"fetch-model: {text}", err=True)

    def begin(self, name: str, version: str, todo: Sequence[FileEntry], skipped: Sequence[FileEntry]) -> None:
        for entry in skipped:
            self._line(f"{entry.path}: already present and verified ({entry.size} bytes)")
        total = sum(e.size for e in todo)
        self._line(f"{name} version {version}: fetching {len(todo)} file(s), {total} bytes")

    def advance(self, nbytes: int) -> None:
        pass

    def file_done(self, entry: FileEntry, outcome: str) -> None:
        self._line(f"{entry.path}: {outcome} ({entry.size} bytes)")

    def end(self) -> None:
        pass


class ProgressBar:
    """Progress for a terminal: one rich bar over all bytes (speed, ETA), plus a line per finished file."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=_stderr_console(),
        )
        self._task: Any = None

    def begin(self, name: str, version: str, todo: Sequence[FileEntry], skipped: Sequence[FileEntry]) -> None:
        self._progress.start()
        for entry in skipped:
            self._progress.console.print(f"{entry.path}: already present and verified")
        self._task = self._progress.add_task(f"{name} {version}", total=sum(e.size for e in todo))

    def advance(self, nbytes: int) -> None:
        self._progress.advance(self._task, nbytes)

    def file_done(self, entry: FileEntry, outcome: str) -> None:
        self._progress.console.print(f"{entry.path}: {outcome}")

    def end(self) -> None:
        self._progress.stop()


def exit_interrupted(message: str) -> NoReturn:
    """After Ctrl-C: one line, exit 130 at once. `os._exit`, because a normal exit joins the transfer
    threads still blocked in a socket read (seconds to minutes); files were already cleaned up."""
    import os

    click.echo(message, err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


# -h here too, not only through the group: click caches a command's help option from the first context it
# sees, so a process that ran the command on its own first would otherwise lose -h under `pyctl-agent`.
@click.command("fetch-model", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("name")
@click.option("--version", default=None, help="Model version (default: the latest complete one).")
@click.option(
    "--to",
    "dest",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Local directory (created if missing); files already there and verified are kept.",
)
@click.option("--bucket", required=True, help="Bucket name, s3://BUCKET[/PREFIX] or gs://BUCKET[/PREFIX].")
@click.option("--prefix", default="", help="Key prefix inside the bucket.")
@click.option(
    "--cloud",
    type=click.Choice(["aws", "gcp"]),
    default=None,
    envvar="PYCTL_CLOUD",
    help="Cloud of a bare bucket name (env PYCTL_CLOUD, as the node's agent.env sets it) [default: aws].",
)
@click.option("--region", default=None, help="AWS region of the bucket (default: the environment's).")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Parallel ranged GETs (connections).",
)
@click.option(
    "--part-size-mib",
    type=click.IntRange(1, 5120),
    default=None,
    help=(
        "Bytes per ranged GET, in MiB [default: automatic: the bytes to fetch (S3) or each file's size "
        f"(GCS) / --concurrency, within {MIN_AUTO_PART_SIZE // MIB}-{MAX_AUTO_PART_SIZE // MIB} MiB]."
    ),
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on when stderr is a terminal)."
)
def fetch_model(
    name: str,
    version: str | None,
    dest: Path,
    bucket: str,
    prefix: str,
    cloud: str | None,
    region: str | None,
    concurrency: int,
    part_size_mib: int | None,
    progress: bool | None,
) -> None:
    """Fetch model NAME from the model cache into --to, verifying every file's sha256.

    S3 endpoints honour AWS_ENDPOINT_URL; GCS honours STORAGE_EMULATOR_HOST. Exit codes: 0 done, 1 the
    store failed (unreachable, no credentials, access denied) or a file failed verification after its
    retry, 2 invalid input (model or version not found, a bad manifest), 130 interrupted (Ctrl-C).
    """
    from pyctl import model_cache
    from pyctl.clouds.store import open_store

    show_bar = sys.stderr.isatty() if progress is None else progress
    try:
        store = open_store(
            parse_bucket(bucket, prefix, cloud),
            region=region,
            concurrency=concurrency,
            part_size=part_size_mib * MIB if part_size_mib else None,
        )
        result = model_cache.fetch_model(
            store, name, version, dest, ProgressBar() if show_bar else LogLines()
        )
    except PyctlError as exc:
        click.echo(f"pyctl-agent fetch-model: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        exit_interrupted(
            "pyctl-agent fetch-model: interrupted: only verified files were kept; "
            "run it again to fetch the rest"
        )
    rate = result.bytes_fetched / result.seconds / MIB if result.seconds else 0.0
    click.echo(
        f"fetch-model: {name} version {result.version} ready in {dest}: {len(result.fetched)} fetched, "
        f"{len(result.skipped)} already verified, {result.bytes_fetched} bytes in {result.seconds:.1f} s "
        f"({rate:.0f} MiB/s)",
        err=True,
    )
