"""Cloud Functions (gen2) entry point of the idle-GPU watchdog, called over HTTP by Cloud Scheduler:
`pyctl.functions.gpu_watchdog_gcp.watchdog_http` (the source zip's generated `main.py` re-exports it).

Thin on purpose: the environment written by infra/modules/gcp-gpu-watchdog is parsed once into a typed
`WatchdogEnvironment`, the work is `pyctl.clouds.gcp.watchdog.run_and_log` (one JSON log line per decision),
then, when enabled, the Spot recovery pass; the response is the run's summary as JSON. The request body is
ignored: what the function does is fixed by its deployment, not by the caller.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyctl.clouds.gcp import recovery, watchdog
from pyctl.core.idle import Settings


@dataclass(frozen=True)
class WatchdogEnvironment:
    """What the function's environment says: which project and zones, at what prices, how, and whether the
    Spot recovery pass runs after the watchdog."""

    project: str
    zones: tuple[str, ...] | None  # None: every zone
    settings: Settings
    prices: Mapping[str, float] = field(default_factory=dict)
    recover_spot: bool = False
    fallback: recovery.FallbackConfig | None = None

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> WatchdogEnvironment:
        """`WATCHDOG_PROJECT` (or the runtime's `GOOGLE_CLOUD_PROJECT`), `WATCHDOG_ZONES` (comma-separated;
        empty = every zone), `WATCHDOG_HOURLY_PRICES` (JSON), `WATCHDOG_RECOVER_SPOT` (`true`: after the
        watchdog, start preempted Spot VMs where capacity is back) and the settings' variables, of which
        `WATCHDOG_ENV` is required here. `WATCHDOG_FALLBACK` (JSON, `recovery.FallbackConfig`; empty: none)
        turns on the spot fallback pass."""
        project = env.get("WATCHDOG_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT") or ""
        if not project:
            raise ValueError("WATCHDOG_PROJECT (or GOOGLE_CLOUD_PROJECT) must name the project to watch")
        zones = tuple(z.strip() for z in env.get("WATCHDOG_ZONES", "").split(",") if z.strip())
        prices = {k: float(v) for k, v in json.loads(env.get("WATCHDOG_HOURLY_PRICES") or "{}").items()}
        recover = env.get("WATCHDOG_RECOVER_SPOT", "false").strip().lower() == "true"
        settings = Settings.from_environ(env)
        if not settings.env:  # the deployed watchdog acts on its own env only, never project-wide
            raise ValueError("WATCHDOG_ENV must name the env whose VMs the watchdog may act on")
        raw_fallback = env.get("WATCHDOG_FALLBACK", "").strip()
        fallback = recovery.FallbackConfig.from_json(raw_fallback) if raw_fallback else None
        return cls(project, zones or None, settings, prices, recover, fallback)


def watchdog_http(request: Any) -> tuple[str, int, dict[str, str]]:
    """HTTP handler (entry point `watchdog_http`). 500 when the run could not list or read something,
    so Cloud Scheduler records the attempt as failed."""
    config = WatchdogEnvironment.from_environ(os.environ)
    zones = list(config.zones) if config.zones else None
    summary = watchdog.run_and_log(config.project, config.settings, zones=zones, prices=dict(config.prices))
    if config.recover_spot:
        recovered = watchdog.recover_and_log(
            config.project, zones, config.settings.dry_run, env=config.settings.env
        )
        summary["spot_recovery"] = recovered["vms"]
        summary["errors"] = [*summary["errors"], *recovered["errors"]]
    if config.fallback is not None:
        shifted = [
            o.to_json()
            for o in recovery.run_fallback(
                config.project, config.fallback, dry_run=config.settings.dry_run, env=config.settings.env
            )
        ]
        for o in shifted:
            severity = "WARNING" if o["outcome"] in ("failed", "conflict") else "INFO"
            line = {"message": "spot-fallback decision", "cloud": "gcp", "severity": severity, **o}
            print(json.dumps(line, sort_keys=True))
        summary["spot_fallback"] = shifted
        failed = [f"spot fallback {o['pool']}: {o['reason']}" for o in shifted if o["outcome"] == "failed"]
        summary["errors"] = [*summary["errors"], *failed]
    status = 500 if summary["errors"] else 200
    return json.dumps(summary, sort_keys=True), status, {"Content-Type": "application/json"}
