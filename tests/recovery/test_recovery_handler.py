"""The recovery Lambda handler, given real EventBridge event JSON, against moto DynamoDB/EC2/S3."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from fakes.ec2_rules import enforce

from pyctl.clouds.aws.recovery import Recovery, job_statuses

from .conftest import AwsWorld, load_event

HANDLER = Path(__file__).resolve().parents[2] / "pyctl" / "functions" / "spot_recovery_aws.py"
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_LOADED: dict[str, ModuleType] = {}


@pytest.fixture
def handler(aws: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    config = {
        "policy": {"max_interruptions": 2, "window_hours": 6, "cooldown_hours": 1},
        "jobs": {
            "llm-train": {
                "launch_template_id": aws.launch_template_id,
                "instance_types": ["g6.xlarge", "g6.2xlarge"],
                "subnet_ids": list(aws.subnets),
                "security_group_ids": [aws.security_group],
            }
        },
        "checkpoint_bucket": aws.bucket,
        "checkpoint_prefix": "team-a",
    }
    monkeypatch.setenv("PYCTL_RECOVERY_TABLE", aws.table)
    monkeypatch.setenv("PYCTL_RECOVERY_CONFIG", json.dumps(config))
    if "module" not in _LOADED:
        # Loaded once: like a warm Lambda container, its clients are reused across events (building
        # them costs about a second). Every setting it reads is the same in each test.
        spec = importlib.util.spec_from_file_location("spot_recovery_handler", HANDLER)
        assert spec and spec.loader
        _LOADED["module"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_LOADED["module"])
    module = _LOADED["module"]
    stop = enforce(module._client("ec2"))
    yield lambda event: module.handler(event, None)
    stop()


def item(aws: AwsWorld, pk: str, sk: str) -> dict[str, Any]:
    return aws.dynamodb.get_item(TableName=aws.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item", {})


def test_interruption_is_recorded_and_replaced_in_another_az(aws: AwsWorld, handler: Any) -> None:
    subnet_a = next(iter(aws.subnets))
    victim = aws.launch_job_instance(subnet=subnet_a)
    result = handler(load_event("spot_interruption_warning", victim))

    assert result["action"] == "record-interruption"
    row = item(aws, "JOB#llm-train", f"INT#{victim}")
    assert row["instance_type"]["S"] == "g6.xlarge"
    assert row["availability_zone"]["S"] == "us-east-1a"
    assert row["time"]["S"] == "2026-11-22T08:00:00Z"
    assert row["replacement_id"]["S"] == result["replacement"]
    new = next(i for i in aws.job_instances() if i["InstanceId"] == result["replacement"])
    assert new["Placement"]["AvailabilityZone"] == "us-east-1b"
    assert new["InstanceType"] == "g6.xlarge"
    assert new["InstanceLifecycle"] == "spot"
    assert {"Key": "pyctl:replaces", "Value": victim} in new["Tags"]


def test_a_duplicate_event_launches_nothing_twice(aws: AwsWorld, handler: Any) -> None:
    victim = aws.launch_job_instance()
    event = load_event("spot_interruption_warning", victim)
    first = handler(event)
    second = handler(event)
    # The warning and the later state change of the same instance: still one replacement.
    third = handler(load_event("state_change_terminated", victim))
    # A re-sent warning with a new event id: recorded once, no second launch.
    fourth = handler(load_event("spot_interruption_warning", victim, id="another-delivery"))

    assert first["replacement"]
    assert second["action"] == "duplicate"
    assert third["action"] == "update-interruption"
    assert fourth.get("replacement") is None
    assert len(aws.job_instances()) == 2
    statuses = job_statuses(aws.dynamodb, aws.table)
    assert [(s.job, s.interruptions) for s in statuses] == [("llm-train", 1)]


def test_on_demand_after_k_interruptions_and_back_to_spot_after_the_cooldown(
    aws: AwsWorld, handler: Any
) -> None:
    # Policy: 2 interruptions within 6 h -> on-demand for 1 h.
    def interrupt(moment: datetime) -> dict[str, Any]:
        victim = aws.launch_job_instance()
        return handler(
            load_event("spot_interruption_warning", victim, id=f"ev-{moment.isoformat()}", time=at(moment))
        )

    def lifecycle(result: dict[str, Any]) -> str:
        new = next(i for i in aws.job_instances() if i["InstanceId"] == result["replacement"])
        return new.get("InstanceLifecycle", "on-demand")

    first = interrupt(T0)
    assert (first["market"], lifecycle(first)) == ("spot", "spot")
    second = interrupt(T0 + timedelta(minutes=30))
    assert (second["market"], lifecycle(second)) == ("on-demand", "on-demand")
    assert item(aws, "JOB#llm-train", "STATE")["on_demand_until"]["S"] == "2026-11-22T09:30:00Z"
    during = interrupt(T0 + timedelta(minutes=50))
    assert (during["market"], lifecycle(during)) == ("on-demand", "on-demand")
    after = interrupt(T0 + timedelta(minutes=95))
    assert (after["market"], lifecycle(after)) == ("spot", "spot")
    assert "NULL" in item(aws, "JOB#llm-train", "STATE")["on_demand_until"]


def test_no_spot_capacity_anywhere_falls_back_to_on_demand(aws: AwsWorld, handler: Any) -> None:
    victim = aws.launch_job_instance()
    refused: list[str] = []

    def no_spot_capacity(params: dict[str, Any], **kwargs: Any) -> Any:
        body = params["body"]  # the serialized EC2 query request
        if body.get("InstanceMarketOptions.MarketType") == "spot":
            refused.append(f"{body['InstanceType']}/{body['NetworkInterface.1.SubnetId']}")
            error = {"Error": {"Code": "InsufficientInstanceCapacity", "Message": "no capacity"}}
            return AWSResponse("https://ec2", 500, {}, None), error
        return None

    from pyctl.clouds.aws import client

    ec2 = client("ec2")
    enforce(ec2)
    ec2.meta.events.register("before-call.ec2.RunInstances", no_spot_capacity)
    recovery = Recovery(aws.config(max_interruptions=3), ec2, aws.dynamodb, aws.s3)
    result = recovery.handle(load_event("spot_interruption_warning", victim))

    assert len(refused) == 4  # every type x subnet was tried on spot first
    assert result["market"] == "on-demand"
    assert "InsufficientInstanceCapacity" in result["market_reason"]
    new = next(i for i in aws.job_instances() if i["InstanceId"] == result["replacement"])
    assert "InstanceLifecycle" not in new


def test_a_job_marked_done_gets_nothing(aws: AwsWorld, handler: Any) -> None:
    victim = aws.launch_job_instance()
    Recovery(aws.config(), aws.ec2, aws.dynamodb).mark_done("llm-train")
    result = handler(load_event("spot_interruption_warning", victim))
    assert result["action"] == "ignore" and "done" in result["reason"]
    assert len(aws.job_instances()) == 1
    assert not item(aws, "JOB#llm-train", f"INT#{victim}")


def test_asg_pool_instances_are_only_recorded(aws: AwsWorld, handler: Any) -> None:
    victim = aws.launch_job_instance()
    aws.ec2.create_tags(Resources=[victim], Tags=[{"Key": "aws:autoscaling:groupName", "Value": "l4-spot"}])
    result = handler(load_event("spot_interruption_warning", victim))
    assert result["action"] == "record-interruption" and "l4-spot" in result["reason"]
    assert "replacement" not in result
    assert item(aws, "JOB#llm-train", f"INT#{victim}")
    assert len(aws.job_instances()) == 1


def test_rebalance_and_running_state_launch_nothing(aws: AwsWorld, handler: Any) -> None:
    victim = aws.launch_job_instance()
    assert handler(load_event("rebalance_recommendation", victim))["action"] == "record-rebalance"
    assert handler(load_event("state_change_running", victim))["action"] == "ignore"
    assert item(aws, "JOB#llm-train", "STATE")["last_rebalance"]["S"] == "2026-11-22T07:55:00Z"
    assert len(aws.job_instances()) == 1


def test_unknown_instances_and_foreign_events_are_ignored(aws: AwsWorld, handler: Any) -> None:
    assert (
        handler(load_event("spot_interruption_warning", "i-0aaaaaaaaaaaaaaaa"))["reason"]
        == "instance not found"
    )
    untagged = aws.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    assert "pyctl:job" in handler(load_event("spot_interruption_warning", untagged))["reason"]
    assert handler({"source": "aws.s3", "detail-type": "Object Created"})["action"] == "ignore"
