"""Cloud Functions (gen2) entry point of the idle-GPU watchdog, called over HTTP by Cloud Scheduler.

Thin on purpose: settings come from environment variables (written by infra/modules/gcp-gpu-watchdog),
the work is `pyctl.clouds.gcp.watchdog.run_and_log` (one JSON log line per decision), then, when enabled,
the Spot recovery pass; the response is the run's summary as JSON. The request body is ignored: what the
function does is fixed by its deployment, not by the caller.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from pyctl.clouds.gcp import watchdog
from pyctl.core.idle import Settings


def options_from_environ(env: Mapping[str, str]) -> dict[str, Any]:
    """project, zones and prices from `WATCHDOG_PROJECT` (or the runtime's `GOOGLE_CLOUD_PROJECT`),
    `WATCHDOG_ZONES` (comma-separated; empty = every zone) and `WATCHDOG_HOURLY_PRICES` (JSON)."""
    project = env.get("WATCHDOG_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT") or ""
    if not project:
        raise ValueError("WATCHDOG_PROJECT (or GOOGLE_CLOUD_PROJECT) must name the project to watch")
    zones = [z.strip() for z in env.get("WATCHDOG_ZONES", "").split(",") if z.strip()]
    prices = {k: float(v) for k, v in json.loads(env.get("WATCHDOG_HOURLY_PRICES") or "{}").items()}
    return {"project": project, "zones": zones or None, "prices": prices}


def recover_spot_enabled(env: Mapping[str, str]) -> bool:
    """`WATCHDOG_RECOVER_SPOT=true`: after the watchdog, start preempted Spot VMs where capacity is back."""
    return env.get("WATCHDOG_RECOVER_SPOT", "false").strip().lower() == "true"


def watchdog_http(request: Any) -> tuple[str, int, dict[str, str]]:
    """HTTP handler (entry point `watchdog_http`). 500 when the run could not list or read something,
    so Cloud Scheduler records the attempt as failed."""
    env = os.environ
    options = options_from_environ(env)
    settings = Settings.from_environ(env)
    summary = watchdog.run_and_log(
        options["project"], settings, zones=options["zones"], prices=options["prices"]
    )
    if recover_spot_enabled(env):
        recovered = watchdog.recover_and_log(options["project"], options["zones"], settings.dry_run)
        summary["spot_recovery"] = recovered["vms"]
        summary["errors"] = [*summary["errors"], *recovered["errors"]]
    status = 500 if summary["errors"] else 200
    return json.dumps(summary, sort_keys=True), status, {"Content-Type": "application/json"}
