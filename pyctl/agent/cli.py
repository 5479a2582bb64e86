"""`pyctl-agent`: the node agent's commands. Each command parses options and calls one function."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from pyctl.agent.fetch_model import fetch_model
from pyctl.errors import PyctlError

if TYPE_CHECKING:
    from pyctl.agent.gce import NodeCloud


def _signal_option(value: str) -> signal.Signals:
    name = value.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return signal.Signals[name]
    except KeyError:
        raise click.BadParameter(f"unknown signal {value!r}") from None


def _job_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from pyctl.core.checkpoint import check_job_name

    try:
        return check_job_name(value)
    except PyctlError as exc:
        raise click.BadParameter(exc.message) from None


def checkpoint_bucket(cloud_help: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The options naming the checkpoint store (`pyctl.agent.gce.node_cloud` builds it from them)."""
    options = (
        click.option("--bucket", required=True, help="Checkpoint bucket: an S3 bucket, or gs://NAME on GCP."),
        click.option("--prefix", default="", help="Key prefix inside the bucket."),
        click.option(
            "--cloud",
            type=click.Choice(["aws", "gcp"]),
            envvar="PYCTL_CLOUD",
            help=f"{cloud_help} [default: gcp for a gs:// bucket, else aws].",
        ),
        click.option("--region", default=None, help="AWS region of the bucket (default: the environment's)."),
    )

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def _node_cloud(cloud: str | None, bucket: str, prefix: str, region: str | None) -> NodeCloud:
    from pyctl.agent.gce import node_cloud

    try:
        return node_cloud(cloud, bucket, prefix, region)
    except PyctlError as exc:  # a --bucket that is no bucket name or URL
        raise click.UsageError(exc.message) from None


def _version() -> str:
    """The installed distribution's version (the node bundle's), else the package's own."""
    from importlib import metadata

    from pyctl import __version__

    for dist in metadata.packages_distributions().get("pyctl", []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return __version__


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"pyctl-agent {_version()}")
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    "-V",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
@click.option("--log-level", default="INFO", show_default=True, envvar="PYCTL_AGENT_LOG_LEVEL")
def main(log_level: str) -> None:
    """pyctl node agent: spot watch and checkpoint sync, resume, model fetch."""
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


@main.command()
@click.option("--job", required=True, callback=_job_name, help="Job name (the checkpoint key segment).")
@click.option(
    "--checkpoint-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the trainer writes step-<N>/ directories (COMPLETE last).",
)
@checkpoint_bucket("aws (IMDS, S3) or gcp (metadata server, GCS)")
@click.option("--pid-file", type=click.Path(dir_okay=False, path_type=Path), help="The trainer's pid file.")
@click.option("--process-name", help="The trainer's process name (instead of --pid-file).")
@click.option(
    "--signal", "checkpoint_signal", default="SIGUSR1", show_default=True, help="Checkpoint-now signal."
)
@click.option(
    "--drain-signal",
    default="SIGTERM",
    show_default=True,
    help="Sent to the trainer after the final checkpoint is uploaded on an interruption notice ('none': never).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.01, 2.0),
    default=2.0,
    show_default=True,
    envvar="PYCTL_AGENT_POLL_INTERVAL",
    help="Seconds between IMDS polls.",
)
@click.option(
    "--upload-margin",
    type=click.FloatRange(0),
    default=None,
    envvar="PYCTL_AGENT_UPLOAD_MARGIN",
    help="Seconds before the interruption time kept for the final upload [30 on AWS; 15 on GCE, whose"
    " Spot VMs stop about 30 s after the notice].",
)
@click.option(
    "--keep",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Complete checkpoints kept in the bucket.",
)
def watch(
    job: str,
    checkpoint_dir: Path,
    bucket: str,
    prefix: str,
    cloud: str | None,
    pid_file: Path | None,
    process_name: str | None,
    checkpoint_signal: str,
    drain_signal: str,
    poll_interval: float,
    upload_margin: float | None,
    keep: int,
    region: str | None,
) -> None:
    """Watch for spot interruption / rebalance notices and keep checkpoints uploaded."""
    from pyctl.agent.gce import GceMetadata
    from pyctl.agent.imds import Imds
    from pyctl.agent.watch import Trainer, WatchConfig, Watcher

    if pid_file is not None and process_name is not None:
        raise click.UsageError("give --pid-file or --process-name, not both")
    node = _node_cloud(cloud, bucket, prefix, region)
    config = WatchConfig(
        job=job,
        checkpoint_dir=checkpoint_dir,
        trainer=Trainer(pid_file=pid_file, process_name=process_name),
        checkpoint_signal=_signal_option(checkpoint_signal),
        drain_signal=None if drain_signal.lower() == "none" else _signal_option(drain_signal),
        poll_interval=poll_interval,
        upload_margin=node.upload_margin if upload_margin is None else timedelta(seconds=upload_margin),
        keep_last=keep,
    )
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    notices = GceMetadata(wait_seconds=poll_interval) if node.name == "gcp" else Imds()
    Watcher(config, notices, node.store).run(stop)


@main.command()
@click.option("--job", required=True, callback=_job_name, help="Job name.")
@checkpoint_bucket("aws (S3) or gcp (GCS)")
@click.option(
    "--to",
    "to_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Local checkpoint dir.",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write RESUME_FROM=<path> here (empty when there is nothing to resume).",
)
def resume(
    job: str,
    bucket: str,
    prefix: str,
    cloud: str | None,
    to_dir: Path,
    env_file: Path | None,
    region: str | None,
) -> None:
    """Download and verify the newest complete checkpoint; print its local path (nothing if none)."""
    from pyctl.agent.resume import resume as fetch_newest
    from pyctl.agent.resume import write_env_file
    from pyctl.core.object_store import BucketUnavailable

    node = _node_cloud(cloud, bucket, prefix, region)
    unreachable: tuple[type[BaseException], ...] = (BucketUnavailable, *node.store.errors)
    try:
        path = fetch_newest(node.store, job=job, to_dir=to_dir)
    except unreachable as exc:
        # The training unit must not start from nothing when the store is unreachable: fail, systemd retries.
        click.echo(f"error: {node.store.url()}: {exc.__cause__ or exc}", err=True)
        sys.exit(1)
    except PyctlError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    if env_file is not None:
        write_env_file(env_file, path)
    if path is not None:
        click.echo(str(path))


main.add_command(fetch_model)
