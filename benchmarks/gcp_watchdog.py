"""Figures for the GCP watchdog and the GCE preemption notice, against the local fakes in tests/gcp.

    .venv/bin/python benchmarks/gcp_watchdog.py [--vms 300]

Prints: one watchdog pass over a fleet of 8-GPU VMs in three zones (wall time, Compute list pages,
ListTimeSeries requests), and how long the agent takes to see a preemption flipped during its long poll.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes.gcp_compute import ComputeFake  # noqa: E402
from fakes.gcp_monitoring import MonitoringFake  # noqa: E402
from fakes.metadata_fake import MetadataFake  # noqa: E402


def watchdog_pass(vms: int) -> None:
    from pyctl.clouds.gcp import compute as gce_compute
    from pyctl.clouds.gcp import monitoring, watchdog
    from pyctl.core.idle import Settings

    now = datetime.now(UTC)
    compute, metrics = ComputeFake("bench-project", now, page_size=500), MonitoringFake()
    server, grpc_server = compute.serve(), metrics.serve()
    os.environ["PYCTL_GCP_COMPUTE_ENDPOINT"] = compute.url
    os.environ["PYCTL_GCP_MONITORING_ENDPOINT"] = metrics.endpoint
    zones = ["us-central1-a", "us-central1-b", "us-central1-c"]
    for i in range(vms):
        doc = compute.add_instance(f"vm-{i:04d}", zones[i % 3], machine_type="a2-highgpu-8g", gpus=8)
        metrics.seed(doc["id"], [[1.0] * 35] * 8, now)
    clients, metric_client = gce_compute.compute_clients(), monitoring.metric_client()  # imports not timed
    started = time.perf_counter()
    settings = Settings(dry_run=True, max_actions_per_run=vms)
    result = watchdog.run(
        "bench-project", settings, now=now, clients=clients, metrics=metric_client, all_envs=True
    )
    elapsed = time.perf_counter() - started
    pages = len(compute.ops("GET", "/aggregated/instances"))
    idle = sum(d.verdict == "idle" for d in result.decisions)
    print(f"watchdog pass: {vms} VMs x 8 GPUs in 3 zones, {idle} idle, {elapsed:.2f} s wall")
    print(f"  Compute aggregatedList pages: {pages}; ListTimeSeries requests: {len(metrics.requests)}")
    server.shutdown()
    grpc_server.stop(None)


def preemption_notice(rounds: int) -> None:
    from pyctl.agent.gce import GceMetadata

    fake = MetadataFake()
    server = fake.serve()
    delays = []
    for _ in range(rounds):
        fake.value = "FALSE"
        source = GceMetadata(fake.host, wait_seconds=2)
        source.interruption_notice()  # first read: value and ETag
        flipped: list[float] = []

        def flip(marks: list[float] = flipped) -> None:
            marks.append(time.perf_counter())
            fake.preempt()

        timer = threading.Timer(0.3, flip)
        timer.start()
        notice = source.interruption_notice()  # long poll, returns on the change
        seen = time.perf_counter()
        timer.join()
        assert notice is not None
        delays.append((seen - flipped[0]) * 1000)
    delays.sort()
    print(
        f"preemption seen after the flip: median {delays[len(delays) // 2]:.1f} ms, max {delays[-1]:.1f} ms "
        f"over {rounds} rounds (wait_for_change long poll)"
    )
    server.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    watchdog_pass(args.vms)
    preemption_notice(args.rounds)
