"""The GCP side of `pyctl watchdog run`: which project and zones, with which settings and prices.

`--cloud gcp --project P [--zone Z ...]` runs without an env file (default settings); `--env NAME` takes the
env's GCP project, the zones of its GCP pools and its `watchdog:` settings. The run itself is the Cloud
Function's (`pyctl.clouds.gcp.watchdog.run`). Honours PYCTL_GCP_COMPUTE_ENDPOINT and
PYCTL_GCP_MONITORING_ENDPOINT; otherwise Application Default Credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyctl.errors import PyctlError

if TYPE_CHECKING:
    from pyctl.core.idle import Settings
    from pyctl.spec import EnvSpec


@dataclass(frozen=True)
class GcpTarget:
    project: str
    zones: list[str] | None  # None: every zone (one aggregated list)
    region: str | None  # for prices; None: the catalog's reference region
    settings: Settings
    pricing: Any = None


def settings_from_spec(spec: EnvSpec) -> Settings:
    """The watchdog settings env.yaml gives (the same fields the GCP module writes into the function)."""
    from pyctl.core.idle import Settings

    w = spec.watchdog
    return Settings(
        idle_minutes=w.idle_minutes,
        threshold=w.threshold_percent,
        min_uptime_minutes=w.min_uptime_minutes,
        missing_data=w.missing_data,
        missing_data_grace_minutes=w.missing_data_grace_minutes,
        max_actions=w.max_actions_per_run,
        dry_run=w.dry_run,
        protected_env=spec.env.protected,
        act_on_protected=w.act_in_protected_env,
    )


def gcp_target_from_spec(spec: EnvSpec) -> GcpTarget | None:
    """The env's GCP project and pool zones, or None when the env has no GCP pools."""
    gcp = spec.clouds.gcp
    pools = [p for p in spec.pools if p.cloud == "gcp"]
    if gcp is None or not pools:
        return None
    zones = sorted({z for p in pools for z in p.zones})
    return GcpTarget(gcp.project, zones or None, gcp.region, settings_from_spec(spec), spec.pricing)


def gcp_target(project: str | None, zones: tuple[str, ...]) -> GcpTarget:
    """`--project P [--zone Z ...]` without an env file: default settings."""
    from pyctl.core.idle import Settings

    if not project:
        raise PyctlError("--cloud gcp needs --project (or --env NAME with GCP pools)")
    regions = {z.rsplit("-", 1)[0] for z in zones}
    return GcpTarget(project, list(zones) or None, regions.pop() if len(regions) == 1 else None, Settings())


def run(target: GcpTarget, settings: Settings, *, opt_in_only: bool = True) -> Any:
    """One watchdog pass on GCP with `settings` (the target's, with the command line's overrides)."""
    from pyctl.catalog.prices import hourly_price_table
    from pyctl.clouds.gcp import watchdog

    prices = hourly_price_table("gcp", target.region, target.pricing)
    return watchdog.run(target.project, settings, zones=target.zones, prices=prices, opt_in_only=opt_in_only)


def target_for(
    env: str | None, cloud: str | None, project: str | None, zones: tuple[str, ...]
) -> GcpTarget | None:
    """The GCP part of one `pyctl watchdog run`, or None when it has none.

    `--project`/`--zone` (or `--cloud gcp` without `--env`): that project; `--env`: the env's GCP pools.
    """
    if cloud == "aws":
        if project or zones:
            raise PyctlError("--project and --zone are for --cloud gcp")
        return None
    if env and (project or zones):
        raise PyctlError("--env and --project/--zone exclude each other: the env names its project and zones")
    if project or zones or (cloud == "gcp" and not env):
        return gcp_target(project, zones)
    if not env:
        return None
    from pyctl.spec import load_env

    spec = load_env(env).spec
    target = gcp_target_from_spec(spec)
    if target is None and cloud == "gcp":
        raise PyctlError(f"env {spec.env.name!r} has no GCP pools: the GCP watchdog has nothing to watch")
    return target


def aws_wanted(env: str | None, cloud: str | None, regions: tuple[str, ...], gcp: GcpTarget | None) -> bool:
    """Whether the run has an AWS part: regions given, or an env with clouds.aws, unless --cloud gcp."""
    if cloud == "gcp":
        if regions:
            raise PyctlError("--region is for AWS; with --cloud gcp use --zone")
        return False
    if regions or not env:
        return bool(regions) or gcp is None  # nothing at all named: the AWS path explains what to give
    from pyctl.spec import load_env

    return load_env(env).spec.clouds.aws is not None
