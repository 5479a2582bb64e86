"""`pyctl jobs`: the spot-recovery record of an env (jobs, interruptions, checkpoints, time lost)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import click

from pyctl.completion import complete_env
from pyctl.errors import PyctlError


def _region_and_table(env: str) -> tuple[str, str]:
    from pyctl.clouds.aws.recovery import table_name
    from pyctl.spec import load_env

    loaded = load_env(env)
    if loaded.spec.clouds.aws is None:
        raise PyctlError(f"{env}: clouds.aws is not set; spot recovery runs on AWS only")
    if not loaded.spec.spot_recovery.enabled:
        raise PyctlError(f"{env}: spot_recovery.enabled is false")
    return loaded.spec.clouds.aws.region, table_name(loaded.name)


@contextmanager
def _aws_errors(table: str) -> Iterator[None]:
    """Turn AWS errors into one clear line and exit 1, never a traceback (no credentials, no network, an
    unreadable answer)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError
    from botocore.parsers import ResponseParserError

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise PyctlError(
            f"AWS: no usable credentials ({exc}); set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,"
            " or run `aws sso login`",
            1,
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ResourceNotFoundException":
            raise PyctlError(f"table {table} not found: is spot recovery deployed (pyctl up)?", 1) from None
        raise PyctlError(f"DynamoDB {table}: {error.get('Code')}: {error.get('Message', '')}", 1) from None
    except BotoCoreError as exc:
        raise PyctlError(f"AWS: {exc}", 1) from None
    except ResponseParserError as exc:
        raise PyctlError(
            f"DynamoDB {table}: unreadable answer ({str(exc).splitlines()[0][:200]})", 1
        ) from None


def format_duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes == 0:
        return f"{int(delta.total_seconds())}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


@click.group()
def jobs() -> None:
    """Spot-recovery jobs: interruptions, checkpoints, on-demand fallback."""


@jobs.command()
@click.option(
    "--env",
    "env",
    required=True,
    help="Env name under infra/envs/, or a directory holding env.yaml.",
    shell_complete=complete_env,
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status(env: str, as_json: bool) -> None:
    """Jobs, their market (spot, or on-demand since/until when), interruptions, last checkpoint step and
    estimated training time lost; then the spot pool groups the on-demand fallback has shifted (AWS Auto
    Scaling groups; GCP spot groups, whose on-demand twin runs meanwhile).
    --json prints the jobs as a list (on_demand_since/until as ISO times or null)."""
    from pyctl.spec import load_env

    loaded = load_env(env)
    rows: list[Any] = []
    groups: list[Any] = []
    table = ""
    if loaded.spec.clouds.aws is not None or loaded.spec.clouds.gcp is None:
        from pyctl.clouds.aws import client
        from pyctl.clouds.aws.recovery import group_statuses, job_statuses, scan_table

        region, table = _region_and_table(env)
        with _aws_errors(table):
            dynamodb = client("dynamodb", region)
            items = scan_table(dynamodb, table)
        rows = job_statuses(dynamodb, table, items=items)
        groups = group_statuses(dynamodb, table, items=items)
    groups += _gcp_fallback(loaded.spec)
    if as_json:
        out: list[dict[str, Any]] = []
        for row in rows:
            item = asdict(row)
            lost = item.pop("time_lost")
            item["time_lost_seconds"] = None if lost is None else int(lost.total_seconds())
            for name in ("on_demand_since", "on_demand_until"):
                item[name] = _iso(item[name])
            out.append(item)
        click.echo(json.dumps(out, indent=2, sort_keys=True))
        return
    if not rows and not groups:
        click.echo(
            f"no jobs recorded in {table}" if table else f"{env}: no GCP pool has shifted to on-demand"
        )
        return
    from pyctl.output import console
    from pyctl.output import table as make_table

    if rows:  # a GCP-only env has no jobs table (the GCP recovery records no jobs)
        _print_jobs(rows)
    if groups:
        gtbl = make_table("group", "market", "since", "until", "reason", copy="group")
        for g in groups:
            gtbl.add_row(
                g.group,
                g.market,
                _iso(g.on_demand_since) or "-",
                _iso(g.on_demand_until) or "-",
                g.reason or "-",
            )
        console().print(gtbl)


def _print_jobs(rows: list[Any]) -> None:
    from pyctl.output import console
    from pyctl.output import table as make_table

    tbl = make_table(
        "job", "market", "since", "until", "done", "interruptions", "last step", "time lost", "instance",
        copy="instance", right=("interruptions", "last step", "time lost"),
    )  # fmt: skip
    for r in rows:
        tbl.add_row(
            r.job,
            r.market,
            _iso(r.on_demand_since) or "-",
            _iso(r.on_demand_until) or "-",
            "yes" if r.done else "no",
            str(r.interruptions),
            "-" if r.last_checkpoint_step is None else str(r.last_checkpoint_step),
            "unknown" if r.time_lost is None else format_duration(r.time_lost),
            r.last_instance or "-",
        )
    console().print(tbl)


def _gcp_fallback(spec: Any) -> list[Any]:
    """The GCP spot pools' fallback (their state objects in the env's GCS bucket); none without GCP spot
    pools or a GCS model cache. No credentials or no access: one line, exit 1."""
    gcp, cache = spec.clouds.gcp, spec.model_cache.gcp
    if gcp is None or cache is None or not spec.spot_recovery.enabled:
        return []
    if not any(p.cloud == "gcp" and p.capacity == "spot" for p in spec.pools):
        return []
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError
    from requests.exceptions import RequestException

    from pyctl.clouds.gcp import storage_client
    from pyctl.clouds.gcp.recovery import fallback_statuses

    try:
        return list(fallback_statuses(storage_client(gcp.project).bucket(cache.bucket)))
    except GoogleAuthError as exc:
        raise PyctlError(
            f"GCP: no usable credentials ({str(exc).splitlines()[0][:200]}); run"
            " `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
            1,
        ) from None
    except (GoogleAPIError, RequestException) as exc:
        raise PyctlError(f"gs://{cache.bucket}/fallback/: {str(exc).splitlines()[0][:200]}", 1) from None


def _iso(moment: datetime | None) -> str | None:
    from pyctl.core.checkpoint import format_time

    return None if moment is None else format_time(moment)


@jobs.command()
@click.option(
    "--env",
    "env",
    required=True,
    help="Env name under infra/envs/, or a directory holding env.yaml.",
    shell_complete=complete_env,
)
@click.option("--job", required=True, help="The job (tag pyctl:job).")
@click.option("--undo", is_flag=True, help="Mark the job running again.")
def done(env: str, job: str, undo: bool) -> None:
    """Mark a job done: its interrupted instances are no longer replaced. The job must be recorded."""
    from pyctl.clouds.aws import client
    from pyctl.clouds.aws.recovery import Recovery, RecoveryConfig, job_recorded, job_statuses

    region, table = _region_and_table(env)
    with _aws_errors(table):
        dynamodb = client("dynamodb", region)
        if not job_recorded(dynamodb, table, job):
            known = [r.job for r in job_statuses(dynamodb, table)]
            raise PyctlError(
                f"--job: no job {job!r} recorded in {table} (known: {', '.join(known) or 'none'}); "
                "see pyctl jobs status"
            )
        Recovery(RecoveryConfig(table=table), ec2=None, dynamodb=dynamodb).mark_done(job, not undo)
    click.echo(f"job {job}: {'running' if undo else 'done'}")
