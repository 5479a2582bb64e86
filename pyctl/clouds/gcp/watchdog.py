"""One idle-GPU watchdog pass on GCP: list GPU VMs, read their GPU series, decide (pure core), act.

Same rules and output as the AWS watchdog (`pyctl.clouds.aws.watchdog`): every GPU's maximum, missing data
is not idle, minimum uptime, keep-alive label, per-run action cap, groups never below their minimum,
reserved VMs reported instead of stopped. Idempotency: only RUNNING VMs are candidates, and a VM the
watchdog stopped or removed is STOPPING/TERMINATED on the next run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyctl.clouds.gcp import compute, monitoring, recovery
from pyctl.core import idle
from pyctl.core.idle import Decision, Settings


@dataclass
class RunResult:
    decisions: list[Decision]
    summary: idle.Summary
    metric_requests: list[int]  # instances named per ListTimeSeries request/page
    errors: list[str]


def iam_permissions(recover_spot: bool = True) -> tuple[str, ...]:
    """Every permission one run uses (the module's custom roles grant exactly these)."""
    extra = recovery.RECOVERY_PERMISSIONS if recover_spot else ()
    return tuple(sorted(set(compute.iam_permissions()["compute"] + monitoring.METRIC_PERMISSIONS + extra)))


def run(
    project: str,
    settings: Settings,
    *,
    zones: Sequence[str] | None = None,
    now: datetime | None = None,
    prices: Mapping[str, float] | None = None,
    clients: compute.ComputeClients | None = None,
    metrics: Any = None,
    opt_in_only: bool = True,
) -> RunResult:
    """One pass over the project (every zone, or only `zones`)."""
    from google.api_core.exceptions import GoogleAPICallError

    now = now or datetime.now(UTC)
    window = idle.metric_window(now, settings)
    clients = clients or compute.compute_clients()
    errors: list[str] = []
    try:
        vms, room, missed = compute.describe_instances(
            clients, project, zones, prices or {}, opt_in_only=opt_in_only
        )
    except GoogleAPICallError as exc:
        errors.append(f"{project}: listing instances failed: {exc}")
        return RunResult([], idle.summarize([], settings.dry_run, errors), [], errors)
    errors.extend(f"{project}: {problem}" for problem in missed)
    wanted = [vm.numeric_id for vm in vms if idle.needs_metrics(vm.facts, settings, now)]
    series: Mapping[str, list[idle.GpuSeries] | None] = {}
    requests: list[int] = []
    if wanted:
        try:
            series, cost = monitoring.read_gpu_series(
                metrics or monitoring.metric_client(), project, window, wanted
            )
            requests = cost.instances_per_request
        except GoogleAPICallError as exc:
            errors.append(f"{project}: metrics could not be read: {exc}")
            series = dict.fromkeys(wanted)
    decided = [idle.decide(vm.facts, series.get(vm.numeric_id), window, settings, now) for vm in vms]
    limited = idle.limit_actions(decided, settings, room)
    decisions = compute.execute(clients, project, list(zip(vms, limited, strict=True)), settings.dry_run)
    return RunResult(decisions, idle.summarize(decisions, settings.dry_run, errors), requests, errors)


def decision_log(d: Decision) -> str:
    """One structured line; Cloud Logging reads `severity` (alerts are warnings, actions notices)."""
    severity = "WARNING" if d.alert else "NOTICE" if d.action != "none" else "INFO"
    line = {"message": "gpu-watchdog decision", "cloud": "gcp", "severity": severity, **d.to_json()}
    return json.dumps(line, sort_keys=True)


def run_and_log(
    project: str,
    settings: Settings,
    *,
    zones: Sequence[str] | None = None,
    prices: Mapping[str, float] | None = None,
    log: Callable[[str], None] = print,
    now: datetime | None = None,
    clients: compute.ComputeClients | None = None,
    metrics: Any = None,
) -> dict[str, Any]:
    """A run as the Cloud Function does it: one JSON log line per decision (Cloud Logging parses them),
    and the summary returned as JSON."""
    result = run(project, settings, zones=zones, now=now, prices=prices, clients=clients, metrics=metrics)
    for d in result.decisions:
        log(decision_log(d))
    for e in result.errors:
        log(json.dumps({"message": "gpu-watchdog error", "cloud": "gcp", "severity": "ERROR", "error": e}))
    summary = result.summary
    return {
        "cloud": "gcp",
        "project": project,
        "dry_run": settings.dry_run,
        "counts": dict(summary.counts),
        "acted": [d.instance_id for d in summary.acted],
        "failed": [d.instance_id for d in summary.failed],
        "alerts": [d.instance_id for d in summary.alerts],
        "hourly_saved": round(summary.hourly_saved, 4),
        "errors": result.errors,
        "metric_requests": len(result.metric_requests),
        "text": summary.text("pyctl GPU watchdog (GCP)"),
    }


def recover_and_log(
    project: str,
    zones: Sequence[str] | None,
    dry_run: bool,
    *,
    log: Callable[[str], None] = print,
    clients: compute.ComputeClients | None = None,
) -> dict[str, Any]:
    """The Spot recovery pass (pyctl.clouds.gcp.recovery) with one JSON log line per VM considered:
    `{"vms": [...], "errors": [...]}` (a failed listing is an error, never an exception)."""
    from google.api_core.exceptions import GoogleAPICallError

    try:
        found = recovery.recover_spot_vms(project, zones, clients=clients, dry_run=dry_run)
    except GoogleAPICallError as exc:
        error = f"{project}: spot recovery could not list instances: {exc}"
        log(
            json.dumps(
                {"message": "spot-recovery error", "cloud": "gcp", "severity": "ERROR", "error": error}
            )
        )
        return {"vms": [], "errors": [error]}
    vms = [r.to_json() for r in found]
    for r in vms:
        severity = "WARNING" if r["outcome"] in ("failed", "no-capacity") else "INFO"
        log(
            json.dumps(
                {"message": "spot-recovery decision", "cloud": "gcp", "severity": severity, **r},
                sort_keys=True,
            )
        )
    return {"vms": vms, "errors": []}
