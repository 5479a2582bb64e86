"""EventBridge -> spot recovery (AWS Lambda): `pyctl.functions.spot_recovery_aws.handler`, a thin adapter over
pyctl.clouds.aws.recovery.

Events: `EC2 Spot Instance Interruption Warning`, `EC2 Instance Rebalance Recommendation`,
`EC2 Instance State-change Notification`. Settings come from the environment the Terraform module writes:
PYCTL_RECOVERY_TABLE and PYCTL_RECOVERY_CONFIG (JSON: policy, jobs, checkpoint bucket and prefix), parsed
once into the typed `RecoveryConfig`.
One JSON log line per decision.
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


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = RecoveryConfig.from_environ(os.environ)
    recovery = Recovery(config=config, ec2=_client("ec2"), dynamodb=_client("dynamodb"), s3=_client("s3"))
    decision = recovery.handle(event)
    print(json.dumps({"detail_type": event.get("detail-type"), **decision}, default=str, sort_keys=True))
    return decision
