"""The AWS watchdog under injected faults (tests/fakes/faultproxy.py between boto3 and moto, over HTTP).

Each failure class of issue 17 items 1-2 has its own test, then a seeded chaos run: 20% faults on every
operation, with botocore's retries as production configures them and with none. What must hold: no wrong
action (a busy or unread instance is never acted on), no double action (an instance acted on is never acted
on again, a group never loses more than its idle members), every miss reported (an idle instance left
running has a failure line), and repeated runs converge to the fault-free end state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from fakes.faultproxy import FaultProxy

from pyctl.clouds import aws
from pyctl.clouds.aws import watchdog
from pyctl.core import idle
from pyctl.core.idle import Settings

from .conftest import REGION, Fleet

IDLE = [[0.0, 1.0, 2.0, 4.9]]
_SESSION = boto3.session.Session()


@pytest.fixture
def proxy(moto_server: Any) -> Iterator[FaultProxy]:
    with FaultProxy(upstream=moto_server.url, seed=7, delay_seconds=0.05) as p:
        yield p


def through(proxy: FaultProxy, retries: dict[str, Any] | None = None) -> watchdog.ClientFactory:
    """Clients as production builds them (aws._RETRIES unless `retries`), sent through the proxy."""
    config = Config(retries=retries or aws._RETRIES, connect_timeout=2, read_timeout=5)

    def factory(service: str, region: str) -> Any:
        return _SESSION.client(service, region_name=region, config=config, endpoint_url=proxy.url)

    return factory


NO_RETRIES = {"mode": "standard", "total_max_attempts": 1}  # one attempt, no retry


def run(fleet: Fleet, factory: watchdog.ClientFactory, **settings: Any) -> watchdog.RunResult:
    chosen = Settings(max_actions_per_run=100, **settings)
    return watchdog.run([REGION], chosen, now=fleet.now, factory=factory, all_envs=True)


def by_id(result: watchdog.RunResult) -> dict[str, idle.Decision]:
    return {d.instance_id: d for d in result.decisions}


def test_a_failed_stop_is_retried_by_the_next_run_and_alerted(fleet: Fleet, proxy: FaultProxy) -> None:
    target = fleet.instance("idle")
    fleet.gpu_metrics(target, IDLE)
    proxy.once("ec2:StopInstances", *["500"] * 10)  # more than botocore's attempts
    first = by_id(run(fleet, through(proxy)))[target]
    stops = [c.fault for c in proxy.calls if c.operation == "ec2:StopInstances"]
    assert len(stops) > 1 and set(stops) == {"500"}  # retried, every attempt failed
    proxy.clear()
    assert (first.action, first.outcome, first.alert) == ("stop", "failed", True)
    assert "InternalError" in first.error or "500" in first.error
    assert fleet.state("idle") == "running"
    # Not "already acted in this window": the next run stops it.
    second = by_id(run(fleet, through(proxy)))[target]
    assert (second.action, second.outcome) == ("stop", "done"), second.reason
    assert fleet.state("idle") in ("stopping", "stopped")


@pytest.mark.parametrize("fault", ["html502", "truncate"])
def test_an_unparseable_answer_to_an_action_fails_that_instance_only(
    fleet: Fleet, proxy: FaultProxy, fault: str
) -> None:
    a, b = fleet.instance("a"), fleet.instance("b")
    fleet.gpu_metrics(a, IDLE)
    fleet.gpu_metrics(b, IDLE)
    proxy.once("ec2:StopInstances", fault)
    result = run(fleet, through(proxy, NO_RETRIES))
    outcomes = sorted(d.outcome for d in result.decisions)
    assert outcomes == ["done", "failed"]  # the run went on to the other instance
    failed = next(d for d in result.decisions if d.outcome == "failed")
    assert failed.alert and failed.error
    assert result.summary.failed == (failed,)


@pytest.mark.parametrize("fault", ["html502", "truncate", "500"])
def test_an_unparseable_listing_is_a_region_failure_line(fleet: Fleet, proxy: FaultProxy, fault: str) -> None:
    fleet.gpu_metrics(fleet.instance("idle"), IDLE)
    proxy.once("ec2:DescribeInstances", fault)
    result = run(fleet, through(proxy, NO_RETRIES))
    assert result.decisions == []
    assert len(result.errors) == 1 and result.errors[0].startswith(f"aws {REGION}: listing instances failed")
    assert "\n" not in result.errors[0]
    assert fleet.state("idle") == "running"


@pytest.mark.parametrize("fault", ["html502", "truncate"])
def test_an_unparseable_metric_answer_is_never_idle(fleet: Fleet, proxy: FaultProxy, fault: str) -> None:
    target = fleet.instance("idle")
    fleet.gpu_metrics(target, IDLE)
    proxy.once("monitoring:GetMetricData", fault)
    result = run(fleet, through(proxy, NO_RETRIES))
    d = by_id(result)[target]
    assert (d.verdict, d.action, d.alert) == ("no-data", "none", True)
    assert any("GetMetricData" in e for e in result.errors)
    assert fleet.state("idle") == "running"


def test_a_lost_answer_to_a_stop_is_not_a_second_action(fleet: Fleet, proxy: FaultProxy) -> None:
    target = fleet.instance("idle")
    fleet.gpu_metrics(target, IDLE)
    proxy.once("ec2:StopInstances", "lost_answer")
    first = by_id(run(fleet, through(proxy, NO_RETRIES)))[target]
    assert first.outcome == "failed"  # reported: the answer never came
    assert fleet.state("idle") in ("stopping", "stopped")  # moto applied it
    assert target not in by_id(run(fleet, through(proxy)))  # not running: no candidate, no second stop


def build_chaos_fleet(fleet: Fleet) -> dict[str, set[str]]:
    """A small fleet of every kind; returns the truth: which instances a fault-free pass acts on."""
    truth: dict[str, set[str]] = {"stop": set(), "keep": set(), "scale-in": set()}
    for n in range(4):
        truth["stop"].add(fleet.instance(f"idle-{n}"))
        fleet.gpu_metrics(fleet.ids[f"idle-{n}"], IDLE)
    truth["stop"].add(fleet.instance("idle-p4d", "p4d.24xlarge"))
    fleet.gpu_metrics(fleet.ids["idle-p4d"], IDLE * 8)
    busy_gpu = [[60.0] * 5 + [0.0] * 25]
    truth["keep"].add(fleet.instance("one-busy-gpu", "p4d.24xlarge"))
    fleet.gpu_metrics(fleet.ids["one-busy-gpu"], IDLE * 3 + busy_gpu + IDLE * 4)
    truth["keep"].add(fleet.instance("busy"))
    fleet.gpu_metrics(fleet.ids["busy"], [[50.0]])
    truth["keep"].add(fleet.instance("no-metrics", "p4d.24xlarge"))
    members = fleet.group("pool", min_size=1, desired=3)
    for member in members:
        fleet.gpu_metrics(member, IDLE)
    return truth


@pytest.mark.parametrize("seed", [7, 11])
def test_chaos_no_wrong_or_double_action_every_miss_reported_and_convergence(
    fleet: Fleet, proxy: FaultProxy, seed: int
) -> None:
    proxy.seed = seed
    truth = build_chaos_fleet(fleet)
    members = {fleet.ids[f"pool-{n}"] for n in range(3)}
    never = truth["keep"]
    acted_on: dict[str, int] = {}
    proxy.rate(0.2)
    for attempt in range(6):
        retries = None if attempt % 2 == 0 else NO_RETRIES
        result = run(fleet, through(proxy, retries))
        decisions = by_id(result)
        for d in result.decisions:
            if d.action != "none" and d.outcome in ("done", "failed"):
                assert d.instance_id not in never, f"wrong action on {d.instance_id}: {d.reason}"
                acted_on[d.instance_id] = acted_on.get(d.instance_id, 0) + (d.outcome == "done")
                assert acted_on[d.instance_id] <= 1, f"double action on {d.instance_id}"
        running = _running(fleet)
        for instance_id in truth["stop"] & running:
            d = decisions.get(instance_id)
            reported = bool(result.errors) or (
                d is not None and (d.outcome == "failed" or (d.verdict == "no-data" and d.alert))
            )
            assert reported, f"{instance_id} left running without a failure line: {d}"
        assert fleet.desired("pool") >= 1  # never below min size, whatever was lost
    proxy.clear()
    for _ in range(2):  # the fault-free passes that finish the work
        run(fleet, through(proxy))
    running = _running(fleet)
    assert truth["stop"].isdisjoint(running)
    assert never <= running
    assert fleet.desired("pool") == 1 and len(members & running) == 1
    assert proxy.faults_injected(), "the proxy injected nothing: this test would prove nothing"


def _running(fleet: Fleet) -> set[str]:
    pages = fleet.ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["running", "pending"]}]
    )
    return {i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]}
