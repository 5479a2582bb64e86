"""The on-demand fallback of a spot pool's Auto Scaling group: shifted after max_interruptions within the
window or on a launch failure for lack of spot capacity, back to the configured mix by the scheduled pass
after the cool-down; only the env's groups (tag pyctl:env); every UpdateAutoScalingGroup request checked
against the documented rules (tests/fakes/ec2_rules.py), against moto in server mode."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from fakes.ec2_rules import enforce_autoscaling

from pyctl.clouds.aws.recovery import (
    GroupSettings,
    Recovery,
    RecoveryConfig,
    group_statuses,
    job_statuses,
)
from pyctl.core.interruptions import RecoveryPolicy

from .conftest import AwsWorld, load_event

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_ASG: dict[str, Any] = {}
SENT: list[dict[str, Any]] = []  # every UpdateAutoScalingGroup request, as the code built it


@pytest.fixture
def autoscaling(aws: AwsWorld) -> Iterator[Any]:
    if "client" not in _ASG:
        _ASG["client"] = boto3.client("autoscaling")
    client = _ASG["client"]
    for env, name in (("dev", "dev-l4-spot"), ("prod", "prod-l4-spot")):
        client.create_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=0,
            MaxSize=4,
            DesiredCapacity=0,
            VPCZoneIdentifier=",".join(aws.subnets),
            MixedInstancesPolicy={
                "LaunchTemplate": {
                    "LaunchTemplateSpecification": {
                        "LaunchTemplateId": aws.launch_template_id,
                        "Version": "$Latest",
                    },
                    "Overrides": [{"InstanceType": "g6.xlarge"}, {"InstanceType": "g6.2xlarge"}],
                },
                "InstancesDistribution": {
                    "OnDemandBaseCapacity": 0,
                    "OnDemandPercentageAboveBaseCapacity": 0,
                    "SpotAllocationStrategy": "capacity-optimized",
                },
            },
            Tags=[{"Key": "pyctl:env", "Value": env, "PropagateAtLaunch": True}],
        )
    SENT.clear()
    stop = enforce_autoscaling(client, SENT)
    try:
        yield client
    finally:
        stop()


def percentage(autoscaling: Any, group: str) -> int:
    found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
    value: int = found["MixedInstancesPolicy"]["InstancesDistribution"]["OnDemandPercentageAboveBaseCapacity"]
    return value


def recovery(aws: AwsWorld, autoscaling: Any, groups: tuple[str, ...] = ("dev-l4-spot",)) -> Recovery:
    config = RecoveryConfig(
        table=aws.table,
        policy=RecoveryPolicy(max_interruptions=2, window=timedelta(hours=6), cooldown=timedelta(hours=1)),
        env="dev",
        groups={g: GroupSettings(on_demand_percentage_above_base=0) for g in groups},
    )
    return Recovery(config, aws.ec2, aws.dynamodb, autoscaling=autoscaling, clock=lambda: T0)


def interrupt(aws: AwsWorld, rec: Recovery, moment: datetime, group: str = "dev-l4-spot") -> dict[str, Any]:
    victim = aws.launch_job_instance()
    aws.ec2.create_tags(Resources=[victim], Tags=[{"Key": "aws:autoscaling:groupName", "Value": group}])
    return rec.handle(load_event("spot_interruption_warning", victim, id=f"ev-{victim}", time=at(moment)))


def test_k_interruptions_shift_the_group_to_on_demand_and_the_schedule_shifts_it_back(
    aws: AwsWorld, autoscaling: Any
) -> None:
    rec = recovery(aws, autoscaling)
    first = interrupt(aws, rec, T0)
    assert first["group_market"] == "spot" and percentage(autoscaling, "dev-l4-spot") == 0
    second = interrupt(aws, rec, T0 + timedelta(minutes=30))
    assert second["group_market"] == "on-demand" and second["group_until"] == "2026-11-22T09:30:00Z"
    assert percentage(autoscaling, "dev-l4-spot") == 100
    # Only the instances distribution is sent: no launch template, so Auto Scaling does not check
    # ec2:RunInstances / iam:PassRole on the pool's template, which the function is not granted.
    assert [list(r["MixedInstancesPolicy"]) for r in SENT] == [["InstancesDistribution"]]
    assert SENT[0]["MixedInstancesPolicy"]["InstancesDistribution"] == {
        "OnDemandBaseCapacity": 0,
        "OnDemandPercentageAboveBaseCapacity": 100,
        "SpotAllocationStrategy": "capacity-optimized",
    }
    # The rest of the policy is untouched.
    found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["dev-l4-spot"])[
        "AutoScalingGroups"
    ][0]
    assert [o["InstanceType"] for o in found["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]] == [
        "g6.xlarge",
        "g6.2xlarge",
    ]
    (job,) = job_statuses(aws.dynamodb, aws.table, now=T0 + timedelta(minutes=31))
    assert (job.market, job.on_demand_since, job.on_demand_until) == (
        "on-demand",
        T0 + timedelta(minutes=30),
        T0 + timedelta(minutes=90),
    )
    (group,) = group_statuses(aws.dynamodb, aws.table, now=T0 + timedelta(minutes=31))
    assert (group.group, group.market, group.on_demand_until) == (
        "dev-l4-spot",
        "on-demand",
        T0 + timedelta(minutes=90),
    )

    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "id": "tick", "time": at(T0)}
    rec.clock = lambda: T0 + timedelta(minutes=60)  # still cooling down
    assert rec.handle(scheduled) == {"action": "restore-groups", "restored": [], "on_demand": ["dev-l4-spot"]}
    assert percentage(autoscaling, "dev-l4-spot") == 100
    rec.clock = lambda: T0 + timedelta(minutes=91)
    assert rec.handle(scheduled)["restored"] == ["dev-l4-spot"]
    assert percentage(autoscaling, "dev-l4-spot") == 0
    (group,) = group_statuses(aws.dynamodb, aws.table, now=T0 + timedelta(minutes=91))
    assert group.market == "spot" and group.on_demand_until is None
    (job,) = job_statuses(aws.dynamodb, aws.table, now=T0 + timedelta(minutes=91))
    assert job.market == "spot"
    # The interruptions that caused the fallback no longer count: one more is not a new fallback.
    third = interrupt(aws, rec, T0 + timedelta(minutes=100))
    assert third["group_market"] == "spot" and percentage(autoscaling, "dev-l4-spot") == 0


def test_a_launch_failure_for_lack_of_spot_capacity_shifts_the_group(aws: AwsWorld, autoscaling: Any) -> None:
    rec = recovery(aws, autoscaling)
    event = {
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "EC2 Instance Launch Unsuccessful",
        "source": "aws.autoscaling",
        "time": at(T0),
        "region": "us-east-1",
        "detail": {
            "StatusCode": "Failed",
            "AutoScalingGroupName": "dev-l4-spot",
            "StatusMessage": "Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot "
            "capacity available that matches your request. Launching EC2 instance failed.",
        },
    }
    assert rec.handle(event)["action"] == "fallback"
    assert percentage(autoscaling, "dev-l4-spot") == 100
    assert rec.handle(event)["action"] == "duplicate"
    other = {
        **event,
        "id": "other",
        "detail": {**event["detail"], "StatusMessage": "Invalid IAM instance profile"},
    }
    assert rec.handle(other)["action"] == "ignore"


def test_only_the_envs_groups_are_shifted(aws: AwsWorld, autoscaling: Any) -> None:
    # A group of another env, even if it were configured: refused by the code (and by the IAM condition
    # on autoscaling:ResourceTag/pyctl:env); the delivery raises, so it is retried or reaches the DLQ.
    rec = recovery(aws, autoscaling, groups=("dev-l4-spot", "prod-l4-spot"))
    interrupt(aws, rec, T0, group="prod-l4-spot")
    with pytest.raises(RuntimeError, match="not in env dev"):
        interrupt(aws, rec, T0 + timedelta(minutes=1), group="prod-l4-spot")
    assert percentage(autoscaling, "prod-l4-spot") == 0
    # A group the env did not configure for fallback is only recorded.
    unlisted = recovery(aws, autoscaling, groups=())
    result = interrupt(aws, unlisted, T0 + timedelta(minutes=2), group="dev-l4-spot")
    assert "group_market" not in result and percentage(autoscaling, "dev-l4-spot") == 0


def test_the_update_validator_rejects_what_aws_rejects(aws: AwsWorld, autoscaling: Any) -> None:
    from botocore.exceptions import ClientError

    for distribution, template in (
        ({"OnDemandPercentageAboveBaseCapacity": 101}, {"LaunchTemplateId": aws.launch_template_id}),
        ({}, {"LaunchTemplateId": aws.launch_template_id, "LaunchTemplateName": "llm-train"}),
    ):
        with pytest.raises(ClientError) as raised:
            autoscaling.update_auto_scaling_group(
                AutoScalingGroupName="dev-l4-spot",
                MixedInstancesPolicy={
                    "LaunchTemplate": {"LaunchTemplateSpecification": template},
                    "InstancesDistribution": distribution,
                },
            )
        assert raised.value.response["Error"]["Code"] == "ValidationError"
