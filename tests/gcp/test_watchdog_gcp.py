"""The GCP watchdog with the real google-cloud-compute (REST) and Monitoring (gRPC) clients on local fakes:
the same scenario table as on AWS, with the exact action for each VM."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import grpc
import pytest
from fakes.gcp_compute import ComputeFake
from fakes.gcp_monitoring import MonitoringFake

from pyctl.clouds.gcp import compute, monitoring, watchdog
from pyctl.core.idle import Settings

from .conftest import NOW, PROJECT

IDLE = [[0.0, 1.0, 2.0, 4.9] * 10]  # one GPU that never reaches 5% over 40 minutes
PRICES = {"a2-highgpu-8g": 29.39, "g2-standard-4": 0.71, "g2-standard-4:spot": 0.28}
A2 = "a2-highgpu-8g"

# name -> (verdict, action) with the default settings.
EXPECTED = {
    "eight-gpu-one-busy": ("busy", "none"),
    "booting-no-data": ("young", "none"),
    "loading-no-metrics": ("no-data", "none"),
    "partial-7-of-8": ("no-data", "none"),
    "keep-alive-live": ("excluded", "none"),
    "keep-alive-expired": ("idle", "stop"),
    "mig-at-min-0": ("idle", "none"),
    "mig-above-min-0": ("idle", "scale-in"),
    "mig-autoscaled-0": ("idle", "none"),
    "spot-standalone": ("idle", "stop"),
    "reserved": ("idle", "none"),
    "busy": ("busy", "none"),
    "idle-standalone": ("idle", "stop"),
}
ACTED = {"keep-alive-expired", "mig-above-min-0", "spot-standalone", "idle-standalone"}


def build_fleet(cf: ComputeFake, mf: MonitoringFake) -> None:
    def vm(name: str, values: list[list[float]] | None, **kw: object) -> None:
        doc = cf.add_instance(name, **kw)  # type: ignore[arg-type]
        if values is not None:
            mf.seed(doc["id"], values, NOW)

    busy_gpu = [[0.0] * 30 + [60.0] * 5 + [0.0] * 5]  # busy 5 of the last 30 minutes
    vm("eight-gpu-one-busy", IDLE * 3 + busy_gpu + IDLE * 4, machine_type=A2, gpus=8)
    vm("booting-no-data", None, machine_type=A2, gpus=8, started=NOW - timedelta(minutes=4))
    vm("loading-no-metrics", None, machine_type=A2, gpus=8)
    vm("partial-7-of-8", IDLE * 7, machine_type=A2, gpus=8)
    vm(
        "keep-alive-live",
        IDLE,
        labels={"pyctl-keep-until": compute.keep_until_label(NOW + timedelta(hours=2))},
    )
    vm(
        "keep-alive-expired",
        IDLE,
        labels={"pyctl-keep-until": compute.keep_until_label(NOW - timedelta(hours=1))},
    )
    at_min = cf.add_group("mig-at-min", target_size=1)
    vm("mig-at-min-0", IDLE, group=at_min, labels={"pyctl-min-size": "1"})
    above = cf.add_group("mig-above-min", target_size=1)
    vm("mig-above-min-0", IDLE, group=above, labels={"pyctl-min-size": "0"})
    # An autoscaler's minimum wins over the pool label.
    scaled = cf.add_group("mig-autoscaled", target_size=1, autoscaler_min=1)
    vm("mig-autoscaled-0", IDLE, group=scaled, labels={"pyctl-min-size": "0"})
    vm("spot-standalone", IDLE, spot=True)
    vm("reserved", IDLE, reservation="pyctl-prod-a100-us-central1-a", labels={"pyctl-capacity": "reserved"})
    vm("opted-out", IDLE, labels={"auto-shutdown": "false"})  # not listed: the filter is auto-shutdown=true
    vm("busy", [[50.0] * 40])
    vm("idle-standalone", IDLE * 8, machine_type=A2, gpus=8, zone="us-central1-b")
    vm("no-gpu", IDLE, gpus=0, machine_type="n2-standard-4")  # not a GPU VM: never a candidate
    vm("already-stopped", IDLE, status="TERMINATED")
    vm("untagged", IDLE, labels={"auto-shutdown": ""})


def run(settings: Settings = Settings()) -> watchdog.RunResult:
    return watchdog.run(PROJECT, settings, now=NOW, prices=PRICES, all_envs=True)


def by_name(result: watchdog.RunResult) -> dict[str, object]:
    return {d.instance_id: d for d in result.decisions}


def test_fleet_gets_the_exact_action_for_every_case(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    build_fleet(compute_fake, monitoring_fake)
    result = run()
    decisions = {d.instance_id: d for d in result.decisions}
    assert {n: (d.verdict, d.action) for n, d in decisions.items()} == EXPECTED
    assert {n for n, d in decisions.items() if d.outcome == "done"} == ACTED
    zone_of = {n: ("us-central1-b" if n == "idle-standalone" else "us-central1-a") for n in EXPECTED}
    for name in ("keep-alive-expired", "spot-standalone", "idle-standalone"):
        assert compute_fake.status(name, zone_of[name]) == "TERMINATED"  # stop waited for its operation
    assert compute_fake.status("mig-above-min-0") == "STOPPING"  # deleted by its group
    assert compute_fake.groups[("zones/us-central1-a", "mig-above-min")]["targetSize"] == 0
    assert compute_fake.groups[("zones/us-central1-a", "mig-at-min")]["targetSize"] == 1
    assert compute_fake.groups[("zones/us-central1-a", "mig-autoscaled")]["targetSize"] == 1
    for name in set(EXPECTED) - ACTED:
        assert compute_fake.status(name, zone_of[name]) == "RUNNING", name
    # Every action is started before any operation is waited for (stops take about a minute each).
    verbs = [path.rsplit("/", 1)[1] for method, path, _ in compute_fake.calls if method == "POST"]
    first_wait = verbs.index("wait")
    assert sorted(verbs[:first_wait]) == ["deleteInstances", "stop", "stop", "stop"]
    assert set(verbs[first_wait:]) == {"wait"}
    # The group removal names the idle VM: resize would let the group pick (maybe a busy VM).
    assert not compute_fake.ops("POST", "/resize")
    [(_, _, body)] = [c for c in compute_fake.calls if c[1].endswith("/deleteInstances")]
    assert body["instances"] == [compute_fake.instances[("us-central1-a", "mig-above-min-0")]["selfLink"]]
    # Evidence and reasons a user reads.
    busy = decisions["eight-gpu-one-busy"]
    assert [g.maximum for g in busy.gpus] == [4.9, 4.9, 4.9, 60.0, 4.9, 4.9, 4.9, 4.9]
    assert "GPU 3 max 60%" in busy.reason
    assert "7 of 8 GPUs" in decisions["partial-7-of-8"].reason
    assert "at min size (1)" in decisions["mig-at-min-0"].reason
    assert "at min size (1)" in decisions["mig-autoscaled-0"].reason
    assert decisions["reserved"].alert and "pyctl-prod-a100-us-central1-a" in decisions["reserved"].reason
    assert "keep-alive until 2026-11-22T14:00:00+00:00" in decisions["keep-alive-live"].reason
    assert all(g.coverage == 1.0 and g.datapoints == 30 for g in decisions["idle-standalone"].gpus)
    assert decisions["idle-standalone"].hourly_cost_saved == 29.39
    # Cheap: one aggregated list (paged), one ListTimeSeries for every VM whose verdict needs data.
    assert len(compute_fake.ops("GET", "/aggregated/instances")) >= 2
    [request] = monitoring_fake.requests
    assert request.aggregation.per_series_aligner.name == "ALIGN_MAX"
    named = re.findall(r'"(\d+)"', request.filter)
    assert len(named) == len(EXPECTED) - 2  # not the young and keep-alive-live VMs
    assert decisions["spot-standalone"].hourly_cost == 0.28  # Spot VMs are priced at the Spot rate
    assert result.summary.hourly_saved == pytest.approx(29.39 + 2 * 0.71 + 0.28)


def test_dry_run_reports_the_same_actions_and_changes_nothing(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    build_fleet(compute_fake, monitoring_fake)
    result = run(Settings(dry_run=True))
    assert {d.instance_id for d in result.decisions if d.outcome == "dry-run"} == ACTED
    assert not compute_fake.ops("POST", "/stop") and not compute_fake.ops("POST", "/deleteInstances")


def test_a_group_never_goes_below_its_minimum_even_with_several_idle_members(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    group = compute_fake.add_group("pool", target_size=3)
    for i in range(3):
        doc = compute_fake.add_instance(f"pool-{i}", group=group, labels={"pyctl-min-size": "1"})
        monitoring_fake.seed(doc["id"], IDLE, NOW)
    result = run()
    assert [d.action for d in result.decisions] == ["scale-in", "scale-in", "none"]
    assert "would go below min size" in result.decisions[2].reason and result.decisions[2].alert
    assert compute_fake.groups[("zones/us-central1-a", "pool")]["targetSize"] == 1


def test_regional_group_member_is_removed_through_the_regional_api(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    group = compute_fake.add_group("pool", zone=None, region="us-central1", target_size=2, autoscaler_min=1)
    doc = compute_fake.add_instance("pool-a", group=group)
    monitoring_fake.seed(doc["id"], IDLE, NOW)
    [decision] = run().decisions
    assert (decision.action, decision.outcome) == ("scale-in", "done")
    assert compute_fake.ops("POST", "regions/us-central1/instanceGroupManagers/pool/deleteInstances")
    assert compute_fake.groups[("regions/us-central1", "pool")]["targetSize"] == 1


def test_a_failed_stop_is_reported_and_the_run_goes_on(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    for name in ("a", "b"):
        doc = compute_fake.add_instance(name)
        monitoring_fake.seed(doc["id"], IDLE, NOW)
    compute_fake.fail_once(
        "POST", "instances/a/stop", 403, "forbidden", "Required 'compute.instances.stop' permission"
    )
    result = run()
    outcome = {d.instance_id: (d.outcome, d.error) for d in result.decisions}
    assert outcome["a"][0] == "failed" and "compute.instances.stop" in outcome["a"][1]
    assert outcome["b"] == ("done", "")
    assert result.summary.failed[0].instance_id == "a"


def test_unreadable_metrics_never_lead_to_an_action(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    doc = compute_fake.add_instance("a")
    monitoring_fake.seed(doc["id"], IDLE, NOW)
    monitoring_fake.fail_with = grpc.StatusCode.PERMISSION_DENIED
    result = run()
    [decision] = result.decisions
    assert (decision.verdict, decision.action) == ("no-data", "none")
    assert "metrics could not be read" in result.errors[0]
    assert compute_fake.status("a") == "RUNNING"


def test_max_actions_acts_on_the_costliest_first(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    for name, machine, gpus in (("small", "g2-standard-4", 1), ("big", A2, 8)):
        doc = compute_fake.add_instance(name, machine_type=machine, gpus=gpus)
        monitoring_fake.seed(doc["id"], IDLE * gpus, NOW)
    result = run(Settings(max_actions_per_run=1))
    got = {d.instance_id: (d.action, d.outcome) for d in result.decisions}
    assert got == {"big": ("stop", "done"), "small": ("none", "")}
    assert compute_fake.status("small") == "RUNNING"


def test_zones_option_lists_only_those_zones(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    for name, zone in (("a", "us-central1-a"), ("b", "europe-west4-a")):
        doc = compute_fake.add_instance(name, zone=zone)
        monitoring_fake.seed(doc["id"], IDLE, NOW)
    result = watchdog.run(PROJECT, Settings(dry_run=True), zones=["europe-west4-a"], now=NOW, all_envs=True)
    assert [d.instance_id for d in result.decisions] == ["b"]
    assert not compute_fake.ops("GET", "/aggregated/instances")


def test_run_and_log_writes_one_json_line_per_decision(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    build_fleet(compute_fake, monitoring_fake)
    lines: list[str] = []
    summary = watchdog.run_and_log(
        PROJECT, Settings(dry_run=True), now=NOW, log=lines.append, prices=PRICES, all_envs=True
    )
    decisions = [json.loads(line) for line in lines]
    assert len(decisions) == len(EXPECTED)
    assert {d["instance_id"] for d in decisions if d["action"] != "none"} == ACTED
    severity = {d["instance_id"]: d["severity"] for d in decisions}
    assert (severity["idle-standalone"], severity["reserved"], severity["busy"]) == (
        "NOTICE",
        "WARNING",
        "INFO",
    )
    assert summary["counts"]["idle"] == 7 and summary["dry_run"] is True
    assert sorted(summary["acted"]) == sorted(ACTED)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("20261122t1030z", "2026-11-22T10:30:00+00:00"),
        ("1795000000", "2026-11-18T11:06:40+00:00"),
        ("next-week", "next-week"),
    ],
)
def test_keep_until_label_values(label: str, expected: str) -> None:
    assert compute.keep_until_from_label(label) == expected


def test_metrics_are_read_in_batches_never_one_call_per_vm(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 VMs per request and 10,000 series per page in production: a smaller fleet here.
    monkeypatch.setattr(monitoring, "INSTANCES_PER_REQUEST", 10)
    monkeypatch.setattr(monitoring, "PAGE_SIZE", 4)
    compute_fake.page_size = 500
    for i in range(25):
        doc = compute_fake.add_instance(f"vm-{i:03d}")
        monitoring_fake.seed(doc["id"], IDLE, NOW)
    result = run(Settings(dry_run=True, max_actions_per_run=1000))
    named = [len(re.findall(r'"(\d+)"', r.filter)) for r in monitoring_fake.requests]
    assert named == [10] * 3 + [10] * 3 + [5] * 2  # three requests, each followed over its pages
    assert [r.page_token for r in monitoring_fake.requests[:3]] == ["", "4", "8"]
    assert result.metric_requests == named
    # Every page was read: every VM has its full series (a missed page would make it no-data).
    assert {d.verdict for d in result.decisions} == {"idle"} and len(result.decisions) == 25


def test_an_unreachable_zone_is_reported_and_the_other_zones_are_handled(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    for name, zone in (("a", "us-central1-a"), ("b", "us-central1-b")):
        doc = compute_fake.add_instance(name, zone=zone)
        monitoring_fake.seed(doc["id"], IDLE, NOW)
    compute_fake.unreachable.add("us-central1-b")
    result = run()
    assert [(d.instance_id, d.outcome) for d in result.decisions] == [("a", "done")]
    assert result.errors == [f"{PROJECT}: zones/us-central1-b: Scope zones/us-central1-b is unreachable"]
    assert result.summary.notify


def test_a_member_of_an_unreadable_group_is_never_stopped_as_a_standalone_vm(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    group = compute_fake.add_group("pool", target_size=2)
    doc = compute_fake.add_instance("pool-0", group=group, labels={"pyctl-min-size": "0"})
    monitoring_fake.seed(doc["id"], IDLE, NOW)
    compute_fake.fail_once("GET", "instanceGroupManagers/pool", 403, "forbidden", "Required permission")
    result = run()
    assert result.decisions == [] and "instance group us-central1-a/pool" in result.errors[0]
    assert compute_fake.status("pool-0") == "RUNNING"


def test_a_failed_recovery_listing_is_an_error_of_the_run_not_an_exception(compute_fake: ComputeFake) -> None:
    compute_fake.fail_once(
        "GET", "/aggregated/instances", 403, "forbidden", "Required 'compute.instances.list'"
    )
    lines: list[str] = []
    recovered = watchdog.recover_and_log(PROJECT, None, False, log=lines.append)
    assert recovered["vms"] == [] and "compute.instances.list" in recovered["errors"][0]
    assert json.loads(lines[0])["severity"] == "ERROR"
