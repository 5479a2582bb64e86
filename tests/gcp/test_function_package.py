"""The Cloud Function source zip: deterministic, self-contained, and its entry point runs a watchdog pass
when imported from the unpacked zip (as the Cloud Functions runtime does), against the local fakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fakes.gcp_compute import ComputeFake
from fakes.gcp_monitoring import MonitoringFake

from pyctl.package import build_function_package

from .conftest import PROJECT

IDLE = [[1.0] * 40]

RUN_ENTRY_POINT = """
import json, main
body, status, headers = main.watchdog_http(None)
origin = main.watchdog.__file__
print(json.dumps({"status": status, "body": json.loads(body), "headers": headers, "origin": origin}))
"""


def test_package_is_deterministic_and_holds_only_the_function_sources(tmp_path: Path) -> None:
    first = build_function_package("gcp_watchdog", tmp_path / "a")
    second = build_function_package("gcp_watchdog", tmp_path / "b")
    assert first.sha256_hex == second.sha256_hex
    assert first.path.read_bytes() == second.path.read_bytes()
    names = zipfile.ZipFile(first.path).namelist()
    assert {"main.py", "requirements.txt", "pyctl/core/idle.py", "pyctl/clouds/gcp/compute.py"} <= set(names)
    assert not [n for n in names if n.startswith(("pyctl/clouds/aws", "pyctl/commands", "pyctl/cli"))]


def test_entry_point_from_the_unpacked_zip_stops_an_idle_vm_and_restarts_a_preempted_one(
    tmp_path: Path, compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    # The function decides on the real clock: the VMs started two hours before it.
    now = datetime.now(UTC)
    dev = {"pyctl-env": "dev"}
    doc = compute_fake.add_instance("idle-l4", started=now - timedelta(hours=2), labels=dev)
    monitoring_fake.seed(doc["id"], IDLE, now)
    busy = compute_fake.add_instance("busy-l4", started=now - timedelta(hours=2), labels=dev)
    monitoring_fake.seed(busy["id"], [[80.0] * 40], now)
    prod = compute_fake.add_instance(
        "idle-prod-l4", started=now - timedelta(hours=2), labels={"pyctl-env": "prod"}
    )
    monitoring_fake.seed(prod["id"], IDLE, now)  # idle, but another env's: WATCHDOG_ENV=dev leaves it alone
    compute_fake.add_instance("spot-l4", spot=True, labels={"pyctl-capacity": "spot", **dev})
    compute_fake.preempt("spot-l4")
    # Another env's preempted Spot VM: the recovery pass is scoped to WATCHDOG_ENV too.
    compute_fake.add_instance(
        "spot-prod-l4", spot=True, labels={"pyctl-capacity": "spot", "pyctl-env": "prod"}
    )
    compute_fake.preempt("spot-prod-l4")

    package = build_function_package("gcp_watchdog", tmp_path / "dist")
    unpacked = tmp_path / "src"
    zipfile.ZipFile(package.path).extractall(unpacked)
    env = {
        **os.environ,
        "PYTHONPATH": str(unpacked),
        "WATCHDOG_PROJECT": PROJECT,
        "WATCHDOG_ENV": "dev",
        "WATCHDOG_HOURLY_PRICES": json.dumps({"g2-standard-4": 0.71}),
        "WATCHDOG_RECOVER_SPOT": "true",
    }
    proc = subprocess.run(
        [sys.executable, "-c", RUN_ENTRY_POINT],
        cwd=unpacked,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    *log_lines, response_line = proc.stdout.strip().splitlines()
    response = json.loads(response_line)
    assert response["status"] == 200
    assert response["body"]["acted"] == ["idle-l4"] and response["body"]["hourly_saved"] == 0.71
    assert [(r["name"], r["outcome"]) for r in response["body"]["spot_recovery"]] == [("spot-l4", "done")]
    assert compute_fake.status("spot-l4") == "RUNNING"
    assert compute_fake.status("spot-prod-l4") == "TERMINATED"
    entries = [json.loads(line) for line in log_lines]
    logged = {entry["instance_id"]: entry for entry in entries if entry["message"] == "gpu-watchdog decision"}
    assert logged["idle-l4"]["action"] == "stop" and logged["idle-l4"]["outcome"] == "done"
    assert logged["busy-l4"]["verdict"] == "busy"
    assert compute_fake.status("idle-l4") == "TERMINATED" and compute_fake.status("busy-l4") == "RUNNING"
    assert Path(response["origin"]).is_relative_to(unpacked)  # the code ran from the zip, not the checkout
