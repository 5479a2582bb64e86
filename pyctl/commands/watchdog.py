"""`pyctl watchdog run` and `pyctl watchdog report`: the idle-GPU watchdog from a workstation.

The same code as the scheduled function (pyctl.clouds.aws.watchdog); settings come from env.yaml's
`watchdog:` section (`--env`) or from flags (`--region`, no env file), flags winning.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from pyctl.completion import complete_env
from pyctl.errors import PyctlError

if TYPE_CHECKING:
    from pyctl.core.idle import Decision, Settings

ENV_HELP = (
    "Env name under infra/envs/, or a directory holding env.yaml (its AWS region and watchdog settings)."
)


def watch_target(env: str | None, regions: tuple[str, ...]) -> tuple[list[str], Settings, Any]:
    """(AWS regions, settings from env.yaml or defaults, the env's pricing or None)."""
    from pyctl.commands.watchdog_gcp import settings_from_spec
    from pyctl.core.idle import Settings

    if env and regions:
        raise PyctlError("--env and --region exclude each other: the env names its region")
    if not env and not regions:
        raise PyctlError("name an env (--env NAME) or at least one region (--region R)")
    if not env:
        return list(regions), Settings(), None
    from pyctl.spec import load_env

    spec = load_env(env).spec
    if spec.clouds.aws is None:
        raise PyctlError(f"env {spec.env.name!r} has no clouds.aws: the AWS watchdog has nothing to watch")
    metric = spec.watchdog.metric  # the CloudWatch agent's names; GCP reads its own metric
    # warn_minutes is AWS only: the GCP watchdog does not warn before a stop.
    settings = replace(
        settings_from_spec(spec),
        namespace=metric.namespace,
        metric_name=metric.name,
        warn_minutes=spec.watchdog.warn_minutes,
    )
    return [spec.clouds.aws.region], settings, spec.pricing


def hourly_prices(regions: list[str], pricing: Any) -> dict[str, float]:
    """`type` (on-demand) and `type:spot` -> $/hour from the catalog for the first region."""
    from pyctl.catalog.prices import hourly_price_table

    return hourly_price_table("aws", regions[0], pricing)


def _override(settings: Settings, **flags: Any) -> Settings:
    given = {k: v for k, v in flags.items() if v is not None and v is not False}
    try:
        return replace(settings, **given)
    except ValueError as exc:
        raise PyctlError(f"watchdog settings: {exc}") from None


@click.group("watchdog")
def watchdog_group() -> None:
    """Idle-GPU watchdog: stop GPU instances whose every GPU stayed idle (run: AWS and GCP; report: AWS)."""


@watchdog_group.command("run")
@click.option("--env", "env", help=ENV_HELP, shell_complete=complete_env)
@click.option(
    "--cloud", type=click.Choice(["aws", "gcp"]), help="Only this cloud (default: every cloud named)."
)
@click.option(
    "--region", "regions", multiple=True, help="AWS region to inspect (repeatable), without an env file."
)
@click.option("--project", help="GCP project to inspect (with --cloud gcp), without an env file.")
@click.option("--zone", "zones", multiple=True, help="GCP zone to inspect (repeatable; default: every zone).")
@click.option(
    "--idle-minutes", type=int, help="Window every GPU must stay below the threshold [env's, else 30]."
)
@click.option(
    "--threshold", type=float, help="GPU utilization percent below which a GPU is idle [env's, else 5]."
)
@click.option(
    "--min-uptime-minutes", type=int, help="Younger instances are 'young', never idle [env's, else 20]."
)
@click.option(
    "--max-actions",
    type=int,
    help="At most this many actions per cloud; the rest are reported [env's, else 10].",
)
@click.option("--dry-run", is_flag=True, help="Decide and report; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of decisions.")
def run_command(
    env: str | None,
    cloud: str | None,
    regions: tuple[str, ...],
    project: str | None,
    zones: tuple[str, ...],
    idle_minutes: int | None,
    threshold: float | None,
    min_uptime_minutes: int | None,
    max_actions: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Run the watchdog once now: decide per instance tagged AutoShutdown (GCP: label) and act, unless
    --dry-run. With --env: the env's AWS region and GCP pool zones, with its `watchdog:` settings.

    Exits 1 when an action or a region failed. Honours AWS_ENDPOINT_URL and the usual AWS credentials
    (GCP: PYCTL_GCP_*_ENDPOINT and Application Default Credentials).
    """
    from pyctl.commands import watchdog_gcp

    flags = {
        "idle_minutes": idle_minutes,
        "threshold": threshold,
        "min_uptime_minutes": min_uptime_minutes,
        "max_actions": max_actions,
        "dry_run": dry_run,
    }
    gcp = watchdog_gcp.target_for(env, cloud, project, zones)
    results = []
    if watchdog_gcp.aws_wanted(env, cloud, regions, gcp):
        from pyctl.clouds.aws import watchdog

        where, settings, pricing = watch_target(env, regions)
        results.append(
            watchdog.run(where, _override(settings, **flags), prices=hourly_prices(where, pricing))
        )
    if gcp is not None:
        results.append(watchdog_gcp.run(gcp, _override(gcp.settings, **flags)))
    decisions = [d for r in results for d in r.decisions]
    if as_json:
        click.echo(json.dumps([d.to_json() for d in decisions], indent=2))
    else:
        for d in decisions:
            click.echo(decision_line(d))
        for r in results:
            click.echo(r.summary.text().splitlines()[0])
    errors = [e for r in results for e in r.errors]
    for error in errors:
        click.echo(f"error: {error}", err=True)
    if errors or any(r.summary.failed for r in results):
        sys.exit(1)


@watchdog_group.command("keep")
@click.argument("instance")
@click.option("--env", "env", required=True, help=ENV_HELP, shell_complete=complete_env)
@click.option("--for", "for_", metavar="DURATION", help="Keep it this long from now: 4h, 90m, 1h30m, 2d.")
@click.option("--until", metavar="TIME", help="Keep it until this ISO-8601 time (UTC unless it says).")
@click.option("--clear", is_flag=True, help="Remove the keep-alive: the watchdog may act again.")
@click.option("--zone", "zones", multiple=True, help="GCP: the VM's zone (default: the env's pool zones).")
def keep_command(
    instance: str, env: str, for_: str | None, until: str | None, clear: bool, zones: tuple[str, ...]
) -> None:
    """Pause the watchdog on one instance of the env: AWS instance id (i-...) or GCP VM name.

    Writes the keep-alive the watchdog reads (AWS tag pyctl:keep-until=<ISO-8601>; GCP label
    pyctl-keep-until=YYYYMMDDtHHMMz, minute precision), shown as `excluded: keep-alive until ...` in
    `pyctl watchdog report`. Refuses an instance that belongs to another env.
    """
    from datetime import UTC, datetime

    from pyctl.core import idle
    from pyctl.spec import load_env

    if clear and (for_ or until):
        raise PyctlError("--clear and --for/--until exclude each other")
    moment = None
    if not clear:
        try:
            moment = idle.keep_until(datetime.now(UTC), for_=for_, until=until)
        except ValueError as exc:
            raise PyctlError(str(exc)) from None
    spec = load_env(env).spec
    what = "keep-alive removed" if moment is None else f"kept until {idle.keep_tag_value(moment)}"
    if instance.startswith("i-"):
        from pyctl.clouds.aws import client
        from pyctl.clouds.aws.watchdog import keep_instance

        if spec.clouds.aws is None:
            raise PyctlError(
                f"env {spec.env.name!r} has no clouds.aws: {instance} cannot be one of its instances"
            )
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            keep_instance(client("ec2", spec.clouds.aws.region), instance, spec.env.name, moment)
        except (BotoCoreError, ClientError) as exc:
            raise PyctlError(f"{instance}: {exc}", exit_code=1) from None
        click.echo(
            f"{instance}: {what} (the watchdog leaves it alone until then)"
            if moment
            else f"{instance}: {what}"
        )
        return
    from pyctl.clouds.gcp.compute import compute_clients, keep_until_label, keep_vm

    if spec.clouds.gcp is None:
        raise PyctlError(
            f"env {spec.env.name!r} has no clouds.gcp (and {instance!r} is not an AWS instance id)"
        )
    where = list(zones) or sorted({z for p in spec.pools if p.cloud == "gcp" for z in p.zones})
    if not where:
        raise PyctlError("--zone: the env's GCP pools name no zones; give the VM's zone")
    from google.api_core.exceptions import GoogleAPICallError

    from pyctl.clouds.gcp.compute import OperationError

    try:
        zone = keep_vm(compute_clients(), spec.clouds.gcp.project, where, instance, spec.env.name, moment)
    except (GoogleAPICallError, OperationError) as exc:
        raise PyctlError(f"{instance}: {exc}", exit_code=1) from None
    if moment is not None:
        what = f"kept until {keep_until_label(moment)} (label pyctl-keep-until; minute precision, UTC)"
    click.echo(f"{instance} ({zone}): {what}")


def decision_line(d: Decision) -> str:
    done = f" [{d.outcome}]" if d.outcome else ""
    return f"{d.instance_id} {d.region} {d.instance_type} {d.verdict} -> {d.action}{done}: {d.reason}"


@watchdog_group.command("report")
@click.option("--env", "env", help=ENV_HELP, shell_complete=complete_env)
@click.option(
    "--region", "regions", multiple=True, help="Region to inspect (repeatable), without an env file."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of the instances.")
def report_command(env: str | None, regions: tuple[str, ...], as_json: bool) -> None:
    """Table of the AWS GPU instances running now, the watchdog's verdict on each and their hourly burn.

    Reads only: nothing is stopped or tagged. Instances without the AutoShutdown tag are listed too.
    """
    from pyctl.clouds.aws import watchdog

    where, settings, pricing = watch_target(env, regions)
    result = watchdog.run(
        where, replace(settings, dry_run=True), prices=hourly_prices(where, pricing), opt_in_only=False
    )
    gpu_nodes = [d for d in result.decisions if d.gpu_count]
    if as_json:
        click.echo(json.dumps([d.to_json() for d in gpu_nodes], indent=2))
    else:
        render_report(gpu_nodes)
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    if result.errors:
        sys.exit(1)


def render_report(decisions: list[Decision]) -> None:
    from pyctl.core.cost import money
    from pyctl.output import console as make_console
    from pyctl.output import table as make_table

    columns = (
        "instance",
        "region",
        "type",
        "GPUs",
        "verdict",
        "watchdog would",
        "max GPU %",
        "$/hour",
        "reason",
    )
    table = make_table(
        *columns, copy="instance", title="GPU instances running now", right=("GPUs", "max GPU %", "$/hour")
    )
    for d in sorted(decisions, key=lambda d: (-(d.hourly_cost or 0.0), d.instance_id)):
        peak = max((g.maximum for g in d.gpus if g.maximum is not None), default=None)
        table.add_row(
            d.instance_id,
            d.region,
            d.instance_type,
            str(d.gpu_count),
            d.verdict,
            d.action,
            "-" if peak is None else f"{peak:g}",
            "-" if d.hourly_cost is None else f"{d.hourly_cost:.2f}",
            d.reason,
        )
    console = make_console()
    console.print(table)
    burn = sum(d.hourly_cost or 0.0 for d in decisions)
    idle_burn = sum(d.hourly_cost or 0.0 for d in decisions if d.verdict == "idle")
    unpriced = sum(d.hourly_cost is None for d in decisions)
    note = f" ({unpriced} without a price)" if unpriced else ""
    console.print(
        f"{len(decisions)} GPU instances, {money(burn)}/hour{note}; idle now: {money(idle_burn)}/hour"
    )
