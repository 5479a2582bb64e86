"""EventBridge -> spot recovery (AWS Lambda): `pyctl.functions.spot_recovery_aws.handler`, a thin adapter over
pyctl.clouds.aws.recovery.

Events: `EC2 Spot Instance Interruption Warning`, `EC2 Instance Rebalance Recommendation`,
`EC2 Instance State-change Notification`. Settings come from the environment the Terraform module writes:
PYCTL_RECOVERY_TABLE and PYCTL_RECOVERY_CONFIG (JSON: env, policy, jobs, groups, checkpoint bucket and
prefix), parsed once into the typed `RecoveryConfig`. Also `EC2 Instance Launch Unsuccessful` of the env's
spot pool groups (aws.autoscaling: no spot capacity -> on-demand) and a `Scheduled Event` (the pass that
puts groups back to spot once their cool-down is over).
One JSON log line per decision. Work that could not be done raises, so Lambda retries the delivery and in
the end sends it to the dead-letter queue; the claims it took are released or expire (their lease).
"""

from __future__ import annotations

import json
import os
from typing import Any

from pyctl.clouds.aws import client
from pyctl.clouds.aws.recovery import Recovery, RecoveryConfig

_clients: dict[str, Any] = {}


def _client(service: str) -> Any:
    # Built once per container and reused by every invocation (a cold start pays for them once).
    if service not in _clients:
        _clients[service] = client(service)
    return _clients[service]


def _launch_client() -> Any:
    # RunInstances without botocore retries: Recovery.run_instance retries itself, and looks for the
    # instance a lost answer may have launched before it sends the request again.
    if "ec2-launch" not in _clients:
        import boto3
        from botocore.config import Config

        _clients["ec2-launch"] = boto3.client("ec2", config=Config(retries={"total_max_attempts": 1}))
    return _clients["ec2-launch"]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = RecoveryConfig.from_environ(os.environ)
    recovery = Recovery(
        config=config,
        ec2=_client("ec2"),
        dynamodb=_client("dynamodb"),
        s3=_client("s3"),
        autoscaling=_client("autoscaling"),
        ec2_launch=_launch_client(),
    )
    invocation = getattr(context, "aws_request_id", None)
    decision = recovery.handle(event, invocation=invocation if isinstance(invocation, str) else None)
    print(json.dumps({"detail_type": event.get("detail-type"), **decision}, default=str, sort_keys=True))
    return decision
