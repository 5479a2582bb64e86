"""The GCP Spot recovery pass is scoped to its env (label pyctl-env), like the watchdog: two envs in one
project, neither pass starts the other's preempted VM (against the Compute REST fake)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fakes.gcp_compute import ComputeFake

from pyctl.clouds.gcp import recovery

PROJECT = "gpu-proj"
NOW = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
def compute_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[ComputeFake]:
    fake = ComputeFake(PROJECT, NOW)
    server = fake.serve()
    monkeypatch.setenv("PYCTL_GCP_COMPUTE_ENDPOINT", fake.url)
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def test_each_envs_pass_starts_only_its_own_preempted_vms(compute_fake: ComputeFake) -> None:
    for env in ("dev", "prod"):
        compute_fake.add_instance(
            f"{env}-train", spot=True, labels={"pyctl-capacity": "spot", "pyctl-env": env, "pyctl-pool": "l4"}
        )
        compute_fake.preempt(f"{env}-train")

    dev = recovery.recover_spot_vms(PROJECT, env="dev")
    assert [(r.name, r.outcome) for r in dev] == [("dev-train", "done")]
    assert compute_fake.status("dev-train") == "RUNNING"
    assert compute_fake.status("prod-train") == "TERMINATED"
    # The env is in the server-side filter, not only checked afterwards.
    listed = [call for call in compute_fake.calls if call[0] == "GET" and "instances" in call[1]]
    assert listed and all("pyctl-env" in str(call) for call in listed)

    prod = recovery.recover_spot_vms(PROJECT, env="prod")
    assert [(r.name, r.outcome) for r in prod] == [("prod-train", "done")]
