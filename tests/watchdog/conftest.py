"""Fixtures for the watchdog tests: a GPU fleet in moto (over HTTP) with seeded CWAgent GPU metrics, and a
client factory that records every API call through botocore's event hooks."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from fakes.slack_webhook import SlackHook

from pyctl.clouds import aws
from pyctl.core.idle import Settings

_SESSION = boto3.session.Session()
REGION = "us-east-1"
NAMESPACE = "CWAgent"
METRIC = "nvidia_smi_utilization_gpu"


def moto_now() -> datetime:
    """A run time 45 minutes after the instances launch (moto stamps LaunchTime with the real clock), so
    they are past the 20-minute minimum uptime; metrics are seeded relative to it."""
    return datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=45)


@dataclass
class CallRecorder:
    """A client factory over the real one; a botocore `before-parameter-build` hook records each call as
    (IAM prefix, operation, parameters) - retries are not counted twice."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, service: str, region: str) -> Any:
        # The factory's config on one shared session: a new session per client reloads the service model
        # JSON (0.4 s a client), which would dominate these tests.
        c = _SESSION.client(service, region_name=region, config=Config(retries=aws._RETRIES))
        prefix = c.meta.service_model.signing_name  # the IAM action prefix: ec2, autoscaling, monitoring...
        prefix = {"monitoring": "cloudwatch"}.get(prefix, prefix)

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.calls.append((prefix, model.name, params))

        c.meta.events.register("before-parameter-build.*.*", record)
        return c

    def iam_actions(self) -> set[str]:
        return {f"{p}:{op}" for p, op, _ in self.calls}

    def ops(self, op: str) -> list[dict[str, Any]]:
        return [params for _, name, params in self.calls if name == op]


@dataclass
class Fleet:
    """Builds instances in moto; `ids[name]` is the instance id of each named case."""

    now: datetime
    ids: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ec2 = boto3.client("ec2", region_name=REGION)
        self.autoscaling = boto3.client("autoscaling", region_name=REGION)
        self.cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        self.ami = "ami-12345678"  # moto accepts any id; DescribeImages costs 2 s per test

    def instance(
        self, name: str, instance_type: str = "g5.xlarge", tags: dict[str, str] | None = None, **kw: Any
    ) -> str:
        tags = {"AutoShutdown": "true", "Name": name, **(tags or {})}
        spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        res = self.ec2.run_instances(
            ImageId=self.ami, MinCount=1, MaxCount=1, InstanceType=instance_type, TagSpecifications=spec, **kw
        )
        self.ids[name] = res["Instances"][0]["InstanceId"]
        return self.ids[name]

    def spot(self, name: str, request_type: str, tags: dict[str, str] | None = None) -> str:
        req = self.ec2.request_spot_instances(
            Type=request_type,
            InstanceCount=1,
            LaunchSpecification={"ImageId": self.ami, "InstanceType": "g5.xlarge"},
        )["SpotInstanceRequests"][0]
        instance_id = req["InstanceId"]
        tags = {"AutoShutdown": "true", "Name": name, **(tags or {})}
        self.ec2.create_tags(Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        self.ids[name] = instance_id
        return instance_id

    def group(self, name: str, min_size: int, desired: int, tags: dict[str, str] | None = None) -> list[str]:
        self.ec2.create_launch_template(
            LaunchTemplateName=f"lt-{name}",
            LaunchTemplateData={"ImageId": self.ami, "InstanceType": "g5.xlarge"},
        )
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=min_size,
            MaxSize=max(desired, 1) + 2,
            DesiredCapacity=desired,
            LaunchTemplate={"LaunchTemplateName": f"lt-{name}"},
            AvailabilityZones=[f"{REGION}a"],
            Tags=[
                {"Key": k, "Value": v, "PropagateAtLaunch": True}
                for k, v in {"AutoShutdown": "true", **(tags or {})}.items()
            ],
        )
        group = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
            "AutoScalingGroups"
        ][0]
        ids = sorted(i["InstanceId"] for i in group["Instances"])
        for n, instance_id in enumerate(ids):
            self.ids[f"{name}-{n}"] = instance_id
        return ids

    def gpu_metrics(
        self,
        instance_id: str,
        utilization: Iterable[Iterable[float]] | None = None,
        *,
        gpus: int = 1,
        minutes: int = 32,
    ) -> None:
        """Seed one datapoint a minute per GPU for the last `minutes` before `now`.

        `utilization[g]` lists GPU g's values, newest first (cycled); default: 1% everywhere.
        """
        per_gpu = [list(u) for u in utilization] if utilization is not None else [[1.0]] * gpus
        data = []
        for g, values in enumerate(per_gpu):
            for m in range(1, minutes + 1):
                data.append(
                    {
                        "MetricName": METRIC,
                        "Dimensions": [
                            {"Name": "InstanceId", "Value": instance_id},
                            {"Name": "index", "Value": str(g)},
                            {"Name": "name", "Value": "NVIDIA A100-SXM4-40GB"},
                        ],
                        "Timestamp": self.now - timedelta(minutes=m),
                        "Value": values[(m - 1) % len(values)],
                        "Unit": "Percent",
                    }
                )
        for i in range(0, len(data), 1000):
            self.cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[i : i + 1000])

    def state(self, name: str) -> str:
        res = self.ec2.describe_instances(InstanceIds=[self.ids[name]])
        return str(res["Reservations"][0]["Instances"][0]["State"]["Name"])

    def desired(self, group: str) -> int:
        res = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])
        return int(res["AutoScalingGroups"][0]["DesiredCapacity"])


@pytest.fixture
def fleet(moto_server: Any) -> Fleet:
    return Fleet(now=moto_now())


@pytest.fixture
def recorder() -> CallRecorder:
    return CallRecorder()


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def slack() -> Iterator[SlackHook]:
    hook = SlackHook()
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()
