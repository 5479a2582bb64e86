"""`pyctl watchdog run`, `keep` and `report`: the idle-GPU watchdog from a workstation.

The same pass as the scheduled functions (`pyctl.core.watchdog.run_pass` on the AWS and GCP adapters).
Target resolution: `--env NAME` takes the env's AWS region and the zones of its GCP pools with its
`watchdog:` settings (env.yaml loaded once per command); without an env file, `--region R` (AWS) and
`--cloud gcp --project P [--zone Z]` (GCP) run with default settings. Flags win over the env's settings.

Env scope: with `--env` the pass touches only instances tagged `pyctl:env=<env name>` (GCP: labelled
`pyctl-env`). `run` without `--env` would act on every env in the account/project, so it is refused unless
`--all-envs` says so; `report` only reads, and without `--env` lists every env's instances.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import click

from pyctl.completion import complete_env
from pyctl.errors import PyctlError

if TYPE_CHECKING:
    from pyctl.core.idle import Decision, Settings
    from pyctl.core.watchdog import RunResult
    from pyctl.spec import EnvSpec

ENV_HELP = (
    "Env name under infra/envs/, or a directory holding env.yaml (its AWS region and watchdog settings)."
)


@dataclass(frozen=True)
class GcpTarget:
    project: str
    zones: list[str] | None  # None: every zone (one aggregated list)
    region: str | None  # for prices; None: the catalog's reference region
    settings: Settings
    pricing: Any = None


class EnvFile:
    """env.yaml named by `--env`, loaded at most once per command (and only when a rule needs it)."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self._spec: EnvSpec | None = None

    @property
    def spec(self) -> EnvSpec:
        if self._spec is None:
            from pyctl.spec import load_env

            assert self.name is not None
            self._spec = load_env(self.name).spec
        return self._spec


def settings_from_spec(spec: EnvSpec, cloud: str) -> Settings:
    """The watchdog settings env.yaml gives for `cloud`: those its Terraform module writes into the
    function (`pyctl.core.idle.SETTINGS`, `spec_path` and `modules`); the others keep the core's defaults."""
    from pyctl.core.idle import SETTINGS, Settings

    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.spec_path is None or cloud not in setting.modules:
            continue
        value: Any = spec if setting.spec_path.startswith("env.") else spec.watchdog
        for part in setting.spec_path.split("."):
            value = getattr(value, part)
        values[setting.name] = value
    return Settings(**values)


def watch_target(
    env: str | None, regions: tuple[str, ...], envfile: EnvFile | None = None
) -> tuple[list[str], Settings, Any]:
    """AWS: (regions, settings from env.yaml or defaults, the env's pricing or None)."""
    from pyctl.core.idle import Settings

    if env and regions:
        raise PyctlError("--env and --region exclude each other: the env names its region")
    if not env and not regions:
        raise PyctlError("name an env (--env NAME) or at least one region (--region R)")
    if not env:
        return list(regions), Settings(), None
    spec = (envfile or EnvFile(env)).spec
    if spec.clouds.aws is None:
        raise PyctlError(f"env {spec.env.name!r} has no clouds.aws: the AWS watchdog has nothing to watch")
    # The AWS module's settings: with the CloudWatch agent's metric names and warn_minutes (AWS only),
    # scoped to the env's instances.
    settings = replace(settings_from_spec(spec, "aws"), env=spec.env.name)
    return [spec.clouds.aws.region], settings, spec.pricing


def gcp_target(
    env: str | None, cloud: str | None, project: str | None, zones: tuple[str, ...], envfile: EnvFile
) -> GcpTarget | None:
    """GCP: the project and zones of one `pyctl watchdog run`, or None when it has none.

    `--project P [--zone Z ...]` (or `--cloud gcp` without `--env`): that project with default settings;
    `--env NAME`: the env's GCP project, the zones of its GCP pools and its `watchdog:` settings.
    """
    from pyctl.core.idle import Settings

    if cloud == "aws":
        if project or zones:
            raise PyctlError("--project and --zone are for --cloud gcp")
        return None
    if env and (project or zones):
        raise PyctlError("--env and --project/--zone exclude each other: the env names its project and zones")
    if project or zones or (cloud == "gcp" and not env):
        if not project:
            raise PyctlError("--cloud gcp needs --project (or --env NAME with GCP pools)")
        regions = {z.rsplit("-", 1)[0] for z in zones}
        region = regions.pop() if len(regions) == 1 else None
        return GcpTarget(project, list(zones) or None, region, Settings())
    if not env:
        return None
    spec = envfile.spec
    gcp = spec.clouds.gcp
    pools = [p for p in spec.pools if p.cloud == "gcp"]
    if gcp is None or not pools:
        if cloud == "gcp":
            raise PyctlError(f"env {spec.env.name!r} has no GCP pools: the GCP watchdog has nothing to watch")
        return None
    pool_zones = sorted({z for p in pools for z in p.zones})
    settings = replace(settings_from_spec(spec, "gcp"), env=spec.env.name)  # the env's VMs only
    return GcpTarget(gcp.project, pool_zones or None, gcp.region, settings, spec.pricing)


def aws_wanted(
    env: str | None, cloud: str | None, regions: tuple[str, ...], gcp: GcpTarget | None, envfile: EnvFile
) -> bool:
    """Whether the run has an AWS part: regions given, or an env with clouds.aws, unless --cloud gcp."""
    if cloud == "gcp":
        if regions:
            raise PyctlError("--region is for AWS; with --cloud gcp use --zone")
        return False
    if regions or not env:
        return bool(regions) or gcp is None  # nothing at all named: the AWS path explains what to give
    return envfile.spec.clouds.aws is not None


def run_gcp(
    target: GcpTarget, settings: Settings, *, opt_in_only: bool = True, all_envs: bool = False
) -> RunResult:
    """One watchdog pass on GCP with `settings` (the target's, with the command line's overrides).
    Honours PYCTL_GCP_COMPUTE_ENDPOINT and PYCTL_GCP_MONITORING_ENDPOINT; else Application Default
    Credentials."""
    from pyctl.catalog.prices import hourly_price_table
    from pyctl.clouds.gcp import watchdog

    prices = hourly_price_table("gcp", target.region, target.pricing)
    return watchdog.run(
        target.project,
        settings,
        zones=target.zones,
        prices=prices,
        opt_in_only=opt_in_only,
        all_envs=all_envs,
    )


def hourly_prices(regions: list[str], pricing: Any) -> dict[str, float]:
    """`type` (on-demand) and `type:spot` -> $/hour from the catalog for the first region."""
    from pyctl.catalog.prices import hourly_price_table

    return hourly_price_table("aws", regions[0], pricing)


def _override(settings: Settings, **flags: Any) -> Settings:
    """`settings` with the flags given (keyword: the settings' name, e.g. threshold_percent)."""
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
@click.option(
    "--all-envs",
    is_flag=True,
    help="With --region/--project and no --env: act on every env's instances there (else refused).",
)
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
    all_envs: bool,
    as_json: bool,
) -> None:
    """Run the watchdog once now: decide per instance tagged AutoShutdown (GCP: label) and act, unless
    --dry-run. With --env: the env's AWS region and GCP pool zones, with its `watchdog:` settings, and only
    the env's instances (tag pyctl:env, GCP label pyctl-env). --region/--project without --env would cover
    every env there: refused unless --all-envs.

    Exits 1 when an action, a region or a whole cloud failed (missing credentials included): one
    `error:` line each on stderr, the other results still printed (with --json: the decisions that were
    made). Honours AWS_ENDPOINT_URL and the usual AWS credentials
    (GCP: PYCTL_GCP_*_ENDPOINT and Application Default Credentials).
    """
    flags = {
        "idle_minutes": idle_minutes,
        "threshold_percent": threshold,
        "min_uptime_minutes": min_uptime_minutes,
        "max_actions_per_run": max_actions,
        "dry_run": dry_run,
    }
    envfile = EnvFile(env)  # loaded once, by the first rule that needs it
    gcp = gcp_target(env, cloud, project, zones, envfile)
    aws = watch_target(env, regions, envfile) if aws_wanted(env, cloud, regions, gcp, envfile) else None
    if env and all_envs:
        raise PyctlError("--env and --all-envs exclude each other: --env acts on that env's instances only")
    if not env and not all_envs:
        raise PyctlError(
            "without --env the watchdog would act on every env's instances there: "
            "name the env (--env NAME) or say --all-envs"
        )
    from pyctl.core.watchdog import one_line

    results: list[RunResult] = []
    names: list[str] = []
    failures: list[str] = []  # a cloud whose pass could not even start (one line each; the others go on)
    if aws is not None:
        where, settings, pricing = aws
        aws_settings = _override(settings, **flags)
        try:
            from pyctl.clouds.aws import watchdog

            results.append(
                watchdog.run(where, aws_settings, prices=hourly_prices(where, pricing), all_envs=all_envs)
            )
            names.append("AWS")
        except Exception as exc:  # noqa: BLE001 - one line per failed cloud, never a traceback
            failures.append(f"aws {','.join(where)}: {one_line(exc)}")
    if gcp is not None:
        gcp_settings = _override(gcp.settings, **flags)
        try:
            results.append(run_gcp(gcp, gcp_settings, all_envs=all_envs))
            names.append("GCP")
        except Exception as exc:  # noqa: BLE001 - one line per failed cloud, never a traceback
            failures.append(f"gcp {gcp.project}: {one_line(exc)}")
    decisions = [d for r in results for d in r.decisions]
    if as_json:
        click.echo(json.dumps([d.to_json() for d in decisions], indent=2))
    else:
        for d in decisions:
            click.echo(decision_line(d))
        for name, r in zip(names, results, strict=True):
            click.echo(r.summary.text(f"pyctl GPU watchdog ({name})").splitlines()[0])
    errors = [e for r in results for e in r.errors] + failures
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
    return f"{d.instance_id} {d.location} {d.instance_type} {d.verdict} -> {d.action}{done}: {d.reason}"


@watchdog_group.command("report")
@click.option("--env", "env", help=ENV_HELP, shell_complete=complete_env)
@click.option(
    "--region", "regions", multiple=True, help="Region to inspect (repeatable), without an env file."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of the instances.")
def report_command(env: str | None, regions: tuple[str, ...], as_json: bool) -> None:
    """Table of the AWS GPU instances running now, the watchdog's verdict on each and their hourly burn.

    Reads only: nothing is stopped or tagged. Instances without the AutoShutdown tag are listed too. With
    --env: that env's instances (tag pyctl:env); with --region: every env's.
    """
    from pyctl.clouds.aws import watchdog

    where, settings, pricing = watch_target(env, regions)
    result = watchdog.run(
        where,
        replace(settings, dry_run=True),
        prices=hourly_prices(where, pricing),
        opt_in_only=False,
        all_envs=not settings.env,  # a dry run: reading every env changes nothing
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
