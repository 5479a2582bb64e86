"""The Spot recovery pass against the Compute fake: preempted STOP-action Spot VMs are started when
capacity is back; VMs stopped on purpose and managed-group members are left alone."""

from __future__ import annotations

from datetime import timedelta

from fakes.gcp_compute import ComputeFake, rfc3339

from pyctl.clouds.gcp import recovery

from .conftest import NOW, PROJECT

SPOT = {"pyctl-capacity": "spot", "pyctl-pool": "l4-overflow"}


def spot_vm(cf: ComputeFake, name: str, **kw: object) -> dict[str, object]:
    return cf.add_instance(name, spot=True, labels=SPOT, **kw)  # type: ignore[arg-type]


def outcomes(result: list[recovery.Recovery]) -> dict[str, tuple[str, str]]:
    return {r.name: (r.action, r.outcome) for r in result}


def test_preempted_vms_are_started_and_the_others_left_alone(compute_fake: ComputeFake) -> None:
    spot_vm(compute_fake, "preempted")
    compute_fake.preempt("preempted")
    spot_vm(compute_fake, "stopped-on-purpose", status="TERMINATED")
    # Preempted yesterday, started again, then stopped by its owner: not a preemption to undo.
    again = spot_vm(compute_fake, "restarted-then-stopped")
    compute_fake.preempt("restarted-then-stopped", at=NOW - timedelta(days=1))
    again["lastStartTimestamp"] = rfc3339(NOW - timedelta(hours=3))
    group = compute_fake.add_group("pool", target_size=1)
    spot_vm(compute_fake, "group-member", group=group)
    compute_fake.preempt("group-member")
    spot_vm(compute_fake, "running")
    compute_fake.add_instance("not-pyctl-spot", spot=True, status="TERMINATED")  # no pyctl-capacity label

    result = recovery.recover_spot_vms(PROJECT)
    assert outcomes(result) == {
        "preempted": ("start", "done"),
        "stopped-on-purpose": ("none", ""),
        "restarted-then-stopped": ("none", ""),
        "group-member": ("none", ""),
    }
    assert compute_fake.status("preempted") == "RUNNING"
    for name in ("stopped-on-purpose", "restarted-then-stopped", "group-member"):
        assert compute_fake.status(name) == "TERMINATED"
    reasons = {r.name: r.reason for r in result}
    assert "managed instance group" in reasons["group-member"]
    assert len(compute_fake.ops("POST", "/start")) == 1
    assert len(compute_fake.ops("GET", "zones/us-central1-a/operations")) == 1  # history read once per zone


def test_no_capacity_is_retried_on_the_next_pass(compute_fake: ComputeFake) -> None:
    spot_vm(compute_fake, "preempted", zone="us-central1-b")
    compute_fake.preempt("preempted", zone="us-central1-b")
    compute_fake.no_capacity.add("us-central1-b")

    [first] = recovery.recover_spot_vms(PROJECT, ["us-central1-b"])
    assert (first.action, first.outcome) == ("start", "no-capacity")
    assert compute_fake.status("preempted", "us-central1-b") == "TERMINATED"

    compute_fake.no_capacity.clear()  # capacity is back
    [second] = recovery.recover_spot_vms(PROJECT, ["us-central1-b"])
    assert second.outcome == "done" and compute_fake.status("preempted", "us-central1-b") == "RUNNING"


def test_dry_run_starts_nothing(compute_fake: ComputeFake) -> None:
    spot_vm(compute_fake, "preempted")
    compute_fake.preempt("preempted")
    [decision] = recovery.recover_spot_vms(PROJECT, dry_run=True)
    assert (decision.action, decision.outcome) == ("start", "dry-run")
    assert not compute_fake.ops("POST", "/start") and compute_fake.status("preempted") == "TERMINATED"
