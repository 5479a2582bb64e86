"""Requests one GCP spot fallback pass makes, against the Compute REST fake and the GCS fake of tests/.

    .venv/bin/python benchmarks/gcp_fallback.py [--pools 20]

Prints, per pass (quiet, shift, settle): Compute requests, GCS requests and wall time, for `--pools` regional
spot pools in two zones, each spot group with 3 preempted VMs for the shift. The fake pages lists at 3 items,
so the zone-operation pages count more than on GCP (500 per page).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes.gcp_compute import ComputeFake  # noqa: E402
from fakes.gcs_fake import GcsFake  # noqa: E402

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pools", type=int, default=20)
    pools = parser.parse_args().pools

    from pyctl.clouds.gcp import compute, recovery

    cf, gcs = ComputeFake("bench", NOW), GcsFake()
    server = cf.serve()
    gcs.create_bucket("bench-models")
    os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
    groups = []
    for i in range(pools):
        spot, twin = f"pyctl-dev-p{i}", f"pyctl-dev-p{i}-od"
        cf.add_group(spot, region="us-central1", target_size=2)
        cf.add_group(twin, region="us-central1", target_size=0)
        zones = ("us-central1-a", "us-central1-b")
        groups.append(recovery.FallbackGroup(f"p{i}", spot, twin, "us-central1", True, zones))
    config = recovery.FallbackConfig(tuple(groups), "bench-models")
    clients = compute.compute_clients(cf.url)

    def run(label: str, at: datetime) -> None:
        cf.calls.clear()
        gcs.requests.clear()
        start = time.monotonic()
        out = recovery.run_fallback("bench", config, clients=clients, now=lambda: at, env="dev")
        seconds = time.monotonic() - start
        actions = sorted({o.action for o in out})
        print(
            f"{label:7s} {pools} pools: {len(cf.calls)} Compute requests, {len(gcs.requests)} GCS requests, "
            f"{seconds:.2f} s, actions {actions}"
        )

    try:
        run("quiet", NOW)
        for i in range(pools):
            for j in range(3):
                name = f"pyctl-dev-p{i}-v{j}v{j}"
                cf.add_instance(name, spot=True)
                cf.preempt(name, at=NOW - timedelta(minutes=5))
        run("shift", NOW)
        run("settle", NOW + timedelta(minutes=15))
    finally:
        server.shutdown()
        gcs.close()


if __name__ == "__main__":
    main()
