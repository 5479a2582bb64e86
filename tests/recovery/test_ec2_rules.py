"""The RunInstances validator (tests/fakes/ec2_rules.py) rejects what AWS rejects and moto accepts, and the
recovery's replacement request passes it."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from pyctl.clouds.aws.recovery import launch_interface
from pyctl.core.interruptions import JobTemplate, Placement

from .conftest import AwsWorld


def _request(aws: AwsWorld, **network: Any) -> dict[str, Any]:
    return {
        "LaunchTemplate": {"LaunchTemplateId": aws.launch_template_id, "Version": "$Latest"},
        "MinCount": 1,
        "MaxCount": 1,
        **network,
    }


def test_moto_alone_accepts_a_top_level_subnet_with_template_interfaces(aws: AwsWorld) -> None:
    plain = boto3.client("ec2")  # no validator: the leniency the validator exists for
    subnet = next(iter(aws.subnets))
    plain.run_instances(**_request(aws, SubnetId=subnet))


def test_the_old_recovery_request_shape_is_rejected(aws: AwsWorld) -> None:
    # What recovery sent before: a top-level SubnetId while the template defines network_interfaces.
    subnet = next(iter(aws.subnets))
    with pytest.raises(ClientError) as raised:
        aws.ec2.run_instances(**_request(aws, SubnetId=subnet))
    assert raised.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert "launch template" in raised.value.response["Error"]["Message"]


def test_top_level_groups_beside_request_interfaces_are_rejected(aws: AwsWorld) -> None:
    subnet = next(iter(aws.subnets))
    request = _request(
        aws,
        SecurityGroupIds=[aws.security_group],
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet}],
    )
    with pytest.raises(ClientError) as raised:
        aws.ec2.run_instances(**request)
    assert raised.value.response["Error"]["Code"] == "InvalidParameterCombination"


def test_an_interface_without_device_index_is_rejected(aws: AwsWorld) -> None:
    subnet = next(iter(aws.subnets))
    with pytest.raises(ClientError) as raised:
        aws.ec2.run_instances(**_request(aws, NetworkInterfaces=[{"SubnetId": subnet}]))
    assert raised.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_the_replacement_interface_passes_and_lands_in_its_subnet(aws: AwsWorld) -> None:
    subnet = list(aws.subnets)[1]
    template = JobTemplate(aws.launch_template_id, ("g6.xlarge",), tuple(aws.subnets), (aws.security_group,))
    interface = launch_interface(template, Placement("g6.xlarge", subnet, aws.subnets[subnet]))
    instance = aws.ec2.run_instances(**_request(aws, NetworkInterfaces=[interface]))["Instances"][0]
    assert instance["SubnetId"] == subnet
    assert instance["Placement"]["AvailabilityZone"] == aws.subnets[subnet]
    (primary,) = instance["NetworkInterfaces"]
    assert [g["GroupId"] for g in primary["Groups"]] == [aws.security_group]
