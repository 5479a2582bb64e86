"""The one watchdog pass over the `WatchdogCloud` verbs: both adapters conform, and `run_pass` owns the
order (list, read only what matters, decide, limit, act) whatever the cloud."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pyctl.clouds.aws.watchdog import AwsWatchdog
from pyctl.clouds.gcp.watchdog import GcpWatchdog
from pyctl.core import idle
from pyctl.core.idle import Decision, GpuSeries, Group, Instance, Settings, Window
from pyctl.core.watchdog import Candidates, Utilization, WatchdogCloud, run_pass

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
OPTED = {"AutoShutdown": "true"}


class StubCloud:
    """A cloud in memory: records what `run_pass` asked for."""

    name = "stub"

    def __init__(self, instances: list[Instance], room: dict[str, int], idle_ids: set[str]) -> None:
        self.instances, self.room, self.idle_ids = instances, room, idle_ids
        self.read: list[str] = []
        self.acted: list[tuple[str, str]] = []

    def list_candidates(self, settings: Settings, *, opt_in_only: bool) -> Candidates:
        return Candidates(list(self.instances), dict(self.room), ["zone-b: could not be listed"])

    def read_utilization(
        self, instances: Sequence[Instance], window: Window, settings: Settings
    ) -> Utilization:
        self.read.extend(i.instance_id for i in instances)
        points = [window.start + timedelta(seconds=window.period_seconds * k) for k in range(window.periods)]
        level = {True: 1.0, False: 80.0}
        return Utilization(
            {
                i.key: [GpuSeries("0", points, [level[i.instance_id in self.idle_ids]] * len(points))]
                for i in instances
            },
            [len(instances)],
        )

    def act(
        self, planned: Sequence[tuple[Instance, Decision]], now: datetime, dry_run: bool
    ) -> list[Decision]:
        out = []
        for instance, d in planned:
            assert instance.instance_id == d.instance_id
            if d.action != "none":
                self.acted.append((d.instance_id, d.action))
                d = replace(d, outcome="dry-run" if dry_run else "done")
            out.append(d)
        return out


def test_both_adapters_answer_the_three_verbs() -> None:
    assert isinstance(AwsWatchdog(["us-east-1"]), WatchdogCloud)
    assert isinstance(GcpWatchdog("proj", clients=object()), WatchdogCloud)  # type: ignore[arg-type]
    assert isinstance(StubCloud([], {}, set()), WatchdogCloud)


def test_run_pass_reads_only_what_matters_limits_by_group_and_acts() -> None:
    old = NOW - timedelta(hours=2)
    group = Group("pool", min_size=1, desired_capacity=2, kind="managed instance group", key="zone-a/pool")
    instances = [
        Instance("idle-standalone", old, OPTED, zone="zone-a", hourly_cost=3.0),
        Instance("busy", old, OPTED, zone="zone-a"),
        Instance("young", NOW - timedelta(minutes=1), OPTED, zone="zone-a"),
        Instance("not-opted", old, {}, zone="zone-a"),
        Instance("member-1", old, OPTED, zone="zone-a", group=group, hourly_cost=2.0),
        Instance("member-2", old, OPTED, zone="zone-a", group=group, hourly_cost=1.0),
        Instance("one-time", old, OPTED, zone="zone-a", market="one-time spot", stop_kind="terminate-only"),
    ]
    cloud = StubCloud(instances, {"zone-a/pool": 1}, {"idle-standalone", "member-1", "member-2", "one-time"})
    result = run_pass(cloud, Settings(), NOW, all_envs=True)
    assert cloud.read == ["idle-standalone", "busy", "member-1", "member-2", "one-time"]
    assert cloud.acted == [("idle-standalone", "stop"), ("member-1", "scale-in")]
    by_id = {d.instance_id: d for d in result.decisions}
    assert "would go below min size" in by_id["member-2"].reason and by_id["member-2"].alert
    assert "scale in managed instance group pool" in by_id["member-1"].reason
    assert by_id["one-time"].action == "none" and "cannot be stopped" in by_id["one-time"].reason
    assert [d.instance_id for d in result.decisions] == [i.instance_id for i in instances]
    assert result.errors == ["zone-b: could not be listed"] and result.summary.errors == tuple(result.errors)
    assert result.metric_requests == [5]
    assert result.summary.counts["idle"] == 4 and result.summary.counts["young"] == 1


def test_run_pass_dry_run_marks_and_never_reads_without_candidates() -> None:
    cloud = StubCloud([], {}, set())
    result = run_pass(cloud, Settings(dry_run=True), NOW, all_envs=True)
    assert cloud.read == [] and result.decisions == [] and result.summary.dry_run
    one = StubCloud([Instance("a", NOW - timedelta(hours=2), OPTED)], {}, {"a"})
    assert [d.outcome for d in run_pass(one, Settings(dry_run=True), NOW, all_envs=True).decisions] == [
        "dry-run"
    ]
    assert idle.Instance("a", NOW, zone="z").key == "z/a"
