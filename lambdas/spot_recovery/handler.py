"""EventBridge -> spot recovery: a thin adapter over pyctl.clouds.aws.recovery.

Events: `EC2 Spot Instance Interruption Warning`, `EC2 Instance Rebalance Recommendation`,
`EC2 Instance State-change Notification`. Settings come from the environment the Terraform module writes:
PYCTL_RECOVERY_TABLE and PYCTL_RECOVERY_CONFIG (JSON: policy, jobs, checkpoint bucket and prefix).
One JSON log line per decision.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pyctl.clouds.aws import client
from pyctl.clouds.aws.recovery import Recovery, RecoveryConfig

_recovery: Recovery | None = None


def _build() -> Recovery:
    # Built once per container: clients are reused across invocations (cold start pays for them once).
    global _recovery
    if _recovery is None:
        config = RecoveryConfig.from_environ(os.environ)
        _recovery = Recovery(config=config, ec2=client("ec2"), dynamodb=client("dynamodb"), s3=client("s3"))
    return _recovery


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    decision = _build().handle(event)
    print(json.dumps({"detail_type": event.get("detail-type"), **decision}, default=str, sort_keys=True))
    return decision
