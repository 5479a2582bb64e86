"""Table tests for the pure recovery decisions (pyctl.core.interruptions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyctl.core.interruptions import (
    INTERRUPTION_WARNING,
    REBALANCE_RECOMMENDATION,
    STATE_CHANGE,
    Action,
    Ec2Event,
    InstanceFacts,
    JobState,
    Market,
    RecoveryPolicy,
    UnsupportedEvent,
    choose_market,
    decide,
    event_key,
    parse_event,
    placement_order,
    replacement_key,
)

from .conftest import EVENTS

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
SPOT = InstanceFacts("i-1", "llm", "g6.xlarge", "us-east-1a", "spot")


def event(detail_type: str, state: str = "") -> Ec2Event:
    return Ec2Event(detail_type, "ev-1", T0, "us-east-1", "i-1", state=state)


@pytest.mark.parametrize(
    ("name", "detail_type", "extra"),
    [
        ("spot_interruption_warning", INTERRUPTION_WARNING, {"instance_action": "terminate"}),
        ("rebalance_recommendation", REBALANCE_RECOMMENDATION, {}),
        ("state_change_terminated", STATE_CHANGE, {"state": "terminated"}),
    ],
)
def test_real_eventbridge_shapes_parse(name: str, detail_type: str, extra: dict[str, str]) -> None:
    raw = json.loads((EVENTS / f"{name}.json").read_text())
    parsed = parse_event(raw)
    assert parsed.detail_type == detail_type
    assert parsed.instance_id == "i-1234567890abcdef0"
    assert parsed.event_id == raw["id"]
    assert parsed.time.tzinfo is not None
    for key, value in extra.items():
        assert getattr(parsed, key) == value


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"source": "aws.s3", "detail-type": INTERRUPTION_WARNING},
        {
            "source": "aws.ec2",
            "detail-type": "EC2 Capacity Reservation Instance Interruption Warning",
            "detail": {},
        },
        {
            "source": "aws.ec2",
            "detail-type": INTERRUPTION_WARNING,
            "id": "x",
            "time": "2026-11-22T08:00:00Z",
            "detail": {},
        },
        {"source": "aws.ec2", "detail-type": INTERRUPTION_WARNING, "detail": {"instance-id": "i-1"}},
    ],
)
def test_other_events_are_unsupported(raw: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedEvent):
        parse_event(raw)


def test_idempotency_keys() -> None:
    assert event_key("ev-1", "i-1") == "EVENT#ev-1#i-1"
    assert event_key("ev-1", "i-1") != event_key("ev-1", "i-2")
    assert replacement_key("i-1") == "REPLACE#i-1"


ASG = InstanceFacts("i-1", "llm", "g6.xlarge", "us-east-1a", "spot", asg_name="l4-spot")
RECLAIMED = InstanceFacts(
    "i-1", "llm", "g6.xlarge", "us-east-1a", "spot", state_reason_code="Server.SpotInstanceTermination"
)
USER_STOPPED = InstanceFacts(
    "i-1", "llm", "g6.xlarge", "us-east-1a", "spot", state_reason_code="Client.UserInitiatedShutdown"
)


@pytest.mark.parametrize(
    ("ev", "facts", "job", "standalone", "action", "replace"),
    [
        (event(INTERRUPTION_WARNING), None, None, True, Action.IGNORE, False),
        (
            event(INTERRUPTION_WARNING),
            InstanceFacts("i-1", None, "g6.xlarge", "a", "spot"),
            None,
            True,
            Action.IGNORE,
            False,
        ),
        (event(INTERRUPTION_WARNING), SPOT, JobState(done=True), True, Action.IGNORE, False),
        (event(INTERRUPTION_WARNING), SPOT, JobState(), True, Action.RECORD_INTERRUPTION, True),
        (event(INTERRUPTION_WARNING), SPOT, JobState(), False, Action.RECORD_INTERRUPTION, False),
        (event(INTERRUPTION_WARNING), ASG, JobState(), True, Action.RECORD_INTERRUPTION, False),
        (event(REBALANCE_RECOMMENDATION), SPOT, JobState(), True, Action.RECORD_REBALANCE, False),
        (event(STATE_CHANGE, "running"), SPOT, JobState(), True, Action.IGNORE, False),
        (event(STATE_CHANGE, "terminated"), RECLAIMED, JobState(), True, Action.RECORD_INTERRUPTION, True),
        (
            event(STATE_CHANGE, "terminated"),
            USER_STOPPED,
            JobState(),
            True,
            Action.UPDATE_INTERRUPTION,
            False,
        ),
        (event(STATE_CHANGE, "stopped"), RECLAIMED, JobState(done=True), True, Action.IGNORE, False),
    ],
)
def test_decide(
    ev: Ec2Event,
    facts: InstanceFacts | None,
    job: JobState | None,
    standalone: bool,
    action: Action,
    replace: bool,
) -> None:
    decision = decide(ev, facts, job, standalone=standalone)
    assert (decision.action, decision.replace) == (action, replace)
    assert decision.reason


POLICY = RecoveryPolicy(max_interruptions=3, window=timedelta(hours=6), cooldown=timedelta(hours=2))
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("job", "now", "capacity_error", "market", "until"),
    [
        (JobState(), T0, False, Market.SPOT, None),
        (JobState(interruptions=(T0 - 2 * H, T0 - H)), T0, False, Market.SPOT, None),
        (JobState(interruptions=(T0 - 2 * H, T0 - H, T0)), T0, False, Market.ON_DEMAND, T0 + 2 * H),
        (
            JobState(interruptions=(T0 - 7 * H, T0 - H, T0)),
            T0,
            False,
            Market.SPOT,
            None,
        ),  # one fell out of 6 h
        (JobState(), T0, True, Market.ON_DEMAND, T0 + 2 * H),
        (JobState(on_demand_until=T0 + H), T0, False, Market.ON_DEMAND, T0 + H),
        # Back to spot after the cool-down: the interruptions that caused it do not count again.
        (
            JobState(interruptions=(T0 - 3 * H, T0 - 2.5 * H, T0 - 2 * H), on_demand_until=T0),
            T0,
            False,
            Market.SPOT,
            None,
        ),
        (
            JobState(
                interruptions=(T0 - 3 * H, T0 - 2.5 * H, T0 - 2 * H, T0 - 0.5 * H, T0 - 0.2 * H, T0),
                on_demand_until=T0 - H,
            ),
            T0,
            False,
            Market.ON_DEMAND,
            T0 + 2 * H,
        ),
    ],
)
def test_choose_market(
    job: JobState, now: datetime, capacity_error: bool, market: Market, until: datetime | None
) -> None:
    choice = choose_market(job, POLICY, now, capacity_error=capacity_error)
    assert (choice.market, choice.on_demand_until) == (market, until)


@pytest.mark.parametrize("bad", [{"max_interruptions": 0}, {"window": timedelta(0)}, {"cooldown": -H}])
def test_policy_validation(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RecoveryPolicy(**bad)


def test_placement_prefers_another_az_then_another_type() -> None:
    subnets = {"subnet-a": "us-east-1a", "subnet-b": "us-east-1b"}
    order = placement_order(SPOT, ["g6.xlarge", "g6.2xlarge"], subnets)
    assert [(p.instance_type, p.availability_zone) for p in order] == [
        ("g6.xlarge", "us-east-1b"),
        ("g6.2xlarge", "us-east-1b"),
        ("g6.2xlarge", "us-east-1a"),
        ("g6.xlarge", "us-east-1a"),
    ]
    assert placement_order(SPOT, [], {"subnet-a": "us-east-1a"})[0].instance_type == "g6.xlarge"
