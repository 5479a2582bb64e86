"""Fixtures for the spot-recovery tests: a local IMDSv2 server, the AWS resources in moto, event loading."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from fakes.ec2_rules import enforce
from fakes.imds import ImdsState, imds_server

from pyctl.clouds.aws.recovery import RecoveryConfig
from pyctl.core.interruptions import JobTemplate, RecoveryPolicy

EVENTS = Path(__file__).parent / "events"
TRAINER = Path(__file__).parent / "trainer.py"


@pytest.fixture
def imds(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ImdsState]]:
    state = ImdsState()
    server = imds_server(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)
    try:
        yield url, state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class AwsWorld:
    bucket: str
    table: str
    launch_template_id: str
    subnets: dict[str, str]  # subnet id -> AZ
    security_group: str
    s3: Any
    ec2: Any
    dynamodb: Any

    def config(self, **policy: Any) -> RecoveryConfig:
        return RecoveryConfig(
            table=self.table,
            policy=RecoveryPolicy(**policy),
            jobs={
                "llm-train": JobTemplate(
                    launch_template_id=self.launch_template_id,
                    instance_types=("g6.xlarge", "g6.2xlarge"),
                    subnet_ids=tuple(self.subnets),
                    security_group_ids=(self.security_group,),
                )
            },
            checkpoint_bucket=self.bucket,
            checkpoint_prefix="team-a",
        )

    def launch_job_instance(
        self, job: str = "llm-train", subnet: str | None = None, spot: bool = True
    ) -> str:
        args: dict[str, Any] = {
            "LaunchTemplate": {"LaunchTemplateId": self.launch_template_id, "Version": "$Latest"},
            "MinCount": 1,
            "MaxCount": 1,
            "NetworkInterfaces": [
                {
                    "DeviceIndex": 0,
                    "SubnetId": subnet or next(iter(self.subnets)),
                    "Groups": [self.security_group],
                }
            ],
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "pyctl:job", "Value": job}]}],
        }
        if spot:
            args["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time"},
            }
        return self.ec2.run_instances(**args)["Instances"][0]["InstanceId"]

    def job_instances(self, job: str = "llm-train") -> list[dict[str, Any]]:
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag:pyctl:job", "Values": [job]}]
        )
        return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


_CLIENTS: dict[str, Any] = {}


def _client(service: str) -> Any:
    # Building a boto3 client costs ~0.3 s; the moto URL is the same for the whole session.
    if service not in _CLIENTS:
        _CLIENTS[service] = boto3.client(service)
    return _CLIENTS[service]


@pytest.fixture
def aws(moto_server: Any) -> Iterator[AwsWorld]:
    s3, ec2, ddb = _client("s3"), _client("ec2"), _client("dynamodb")
    s3.create_bucket(Bucket="ckpt")
    ddb.create_table(
        TableName="pyctl-dev-spot-recovery",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = {}
    for i, az in enumerate(("us-east-1a", "us-east-1b")):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"][
            "SubnetId"
        ]
        subnets[subnet] = az
    group = ec2.create_security_group(GroupName="llm-train", Description="pool", VpcId=vpc)["GroupId"]
    # What infra/modules/aws-gpu-pool's launch template defines: one network interface with the group.
    lt = ec2.create_launch_template(
        LaunchTemplateName="llm-train",
        LaunchTemplateData={
            "ImageId": "ami-12c6146b",
            "InstanceType": "g6.xlarge",
            "NetworkInterfaces": [
                {
                    "DeviceIndex": 0,
                    "AssociatePublicIpAddress": False,
                    "DeleteOnTermination": True,
                    "Groups": [group],
                }
            ],
        },
    )["LaunchTemplate"]["LaunchTemplateId"]
    # moto accepts RunInstances requests AWS rejects: check ours against the documented rules.
    stop = enforce(ec2)
    try:
        yield AwsWorld("ckpt", "pyctl-dev-spot-recovery", lt, subnets, group, s3, ec2, ddb)
    finally:
        stop()


def load_event(name: str, instance_id: str, **overrides: Any) -> dict[str, Any]:
    """A stored EventBridge event for `instance_id` (id/time overridable to simulate new deliveries)."""
    event = json.loads((EVENTS / f"{name}.json").read_text())
    old = event["detail"]["instance-id"]
    event["detail"]["instance-id"] = instance_id
    event["resources"] = [r.replace(old, instance_id) for r in event["resources"]]
    event.update(overrides)
    return event
