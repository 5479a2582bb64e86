"""One idle-GPU watchdog pass on GCP: list GPU VMs, read their GPU series, decide (pure core), act.

Same rules and output as the AWS watchdog (`pyctl.clouds.aws.watchdog`): every GPU's maximum, missing data
is not idle, minimum uptime, keep-alive label, per-run action cap, groups never below their minimum,
reserved VMs reported instead of stopped. Idempotency: only RUNNING VMs are candidates, and a VM the
watchdog stopped or removed is STOPPING/TERMINATED on the next run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pyctl.clouds.gcp import compute, monitoring, recovery
from pyctl.core.idle import SUMMARY_TOP, Decision, Instance, Settings, Window
from pyctl.core.watchdog import Candidates, RunResult, Utilization, one_line, run_pass


def iam_permissions(recover_spot: bool = True) -> dict[str, tuple[str, ...]]:
    """Every permission one run uses, per custom role of the module (read / act; the roles grant exactly
    these): the Compute verbs, the metric read and, with `recover_spot`, the Spot recovery pass's verbs."""
    parts: list[dict[str, tuple[str, ...]]] = [
        compute.iam_permissions(),
        {"read": monitoring.METRIC_PERMISSIONS},
    ]
    if recover_spot:
        parts.append(recovery.iam_permissions())
    return {
        role: tuple(sorted({p for part in parts for p in part.get(role, ())})) for role in ("read", "act")
    }


class GcpWatchdog:
    """`pyctl.core.watchdog.WatchdogCloud` over Compute Engine and Cloud Monitoring in one project."""

    name = "gcp"

    def __init__(
        self,
        project: str,
        *,
        zones: Sequence[str] | None = None,
        prices: Mapping[str, float] | None = None,
        clients: compute.ComputeClients | None = None,
        metrics: Any = None,
    ) -> None:
        self.project = project
        self.zones = list(zones) if zones else None
        self.prices = dict(prices or {})
        self._clients = clients
        self._metrics = metrics

    @property
    def clients(self) -> compute.ComputeClients:
        if self._clients is None:
            self._clients = compute.compute_clients()
        return self._clients

    def list_candidates(self, settings: Settings, *, opt_in_only: bool) -> Candidates:
        try:
            vms, room, missed = compute.describe_instances(
                self.clients,
                self.project,
                self.zones,
                self.prices,
                opt_in_only=opt_in_only,
                env=settings.env,
            )
        except Exception as exc:  # noqa: BLE001 - missing credentials, API errors, unparseable answers
            return Candidates([], errors=[f"gcp {self.project}: listing instances failed: {one_line(exc)}"])
        return Candidates(vms, room, [f"{self.project}: {problem}" for problem in missed])

    def read_utilization(
        self, instances: Sequence[Instance], window: Window, settings: Settings
    ) -> Utilization:
        ids = {vm.key: compute.gce_ref(vm).numeric_id for vm in instances}
        try:
            metrics = self._metrics if self._metrics is not None else monitoring.metric_client()
            series, cost = monitoring.read_gpu_series(metrics, self.project, window, list(ids.values()))
        except Exception as exc:  # noqa: BLE001 - never idle on a failed read: every VM here is unread
            error = f"gcp {self.project}: metrics could not be read: {one_line(exc)}"
            return Utilization(dict.fromkeys(ids), errors=[error])
        return Utilization(
            {key: series.get(numeric) for key, numeric in ids.items()}, cost.instances_per_request
        )

    def act(
        self, planned: Sequence[tuple[Instance, Decision]], now: datetime, dry_run: bool
    ) -> list[Decision]:
        try:
            return compute.execute(self.clients, self.project, planned, dry_run)
        except Exception as exc:  # noqa: BLE001 - every planned action is reported failed, none is lost
            error = one_line(exc)
            return [
                d if d.action == "none" else replace(d, outcome="failed", alert=True, error=error)
                for _, d in planned
            ]


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
    all_envs: bool = False,
) -> RunResult:
    """One watchdog pass over `project` (`pyctl.core.watchdog.run_pass` on `GcpWatchdog`): the VMs of
    `settings.env`, or of every env with `all_envs=True`."""
    cloud = GcpWatchdog(project, zones=zones, prices=prices, clients=clients, metrics=metrics)
    return run_pass(cloud, settings, now or datetime.now(UTC), opt_in_only=opt_in_only, all_envs=all_envs)


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
    all_envs: bool = False,
    log_pointer: str = "",
) -> dict[str, Any]:
    """A run as the Cloud Function does it: one JSON log line per decision (Cloud Logging parses them),
    and the summary returned as JSON."""
    result = run(
        project,
        settings,
        zones=zones,
        now=now,
        prices=prices,
        clients=clients,
        metrics=metrics,
        all_envs=all_envs,
    )
    for d in result.decisions:
        log(decision_log(d))
    for e in result.errors:
        log(json.dumps({"message": "gpu-watchdog error", "cloud": "gcp", "severity": "ERROR", "error": e}))
    summary = result.summary
    top = SUMMARY_TOP
    # Bounded at any fleet size: at most SUMMARY_TOP names per kind (`*_total` counts them all); the log
    # lines above have every decision.
    return {
        "cloud": "gcp",
        "project": project,
        "ok": not result.errors and not summary.failed,
        "dry_run": settings.dry_run,
        **summary.named(top),
        "hourly_saved": round(summary.hourly_saved, 4),
        "errors": result.errors[:top],
        "errors_total": len(result.errors),
        "metric_requests": len(result.metric_requests),
        "text": summary.text(
            "pyctl GPU watchdog (GCP)", log=log_pointer or "Cloud Logging (this function's logs)"
        ),
    }


def recover_and_log(
    project: str,
    zones: Sequence[str] | None,
    dry_run: bool,
    *,
    log: Callable[[str], None] = print,
    clients: compute.ComputeClients | None = None,
    env: str = "",
) -> dict[str, Any]:
    """The Spot recovery pass (pyctl.clouds.gcp.recovery) with one JSON log line per VM considered:
    `{"vms": [...], "errors": [...]}` (a failed listing is an error, never an exception)."""
    try:
        found = recovery.recover_spot_vms(project, zones, clients=clients, dry_run=dry_run, env=env)
    except Exception as exc:  # noqa: BLE001 - one line, the response still goes out
        error = f"gcp {project}: spot recovery could not list instances: {one_line(exc)}"
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
