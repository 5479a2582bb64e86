"""Scheduled entry point of the idle-GPU watchdog (AWS Lambda, python3.12).

Thin on purpose: settings come from environment variables (written by infra/modules/aws-gpu-watchdog),
the work is `pyctl.clouds.aws.watchdog.run_and_notify`, and the return value is the run's summary.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pyctl.clouds.aws import watchdog
from pyctl.core.idle import Settings


def handler(event: Any, context: Any) -> dict[str, Any]:
    env = os.environ
    regions = [
        r.strip() for r in env.get("WATCHDOG_REGIONS", env.get("AWS_REGION", "")).split(",") if r.strip()
    ]
    if not regions:
        raise ValueError("WATCHDOG_REGIONS (or AWS_REGION) must name at least one region")
    target = watchdog.Notify(
        sns_topic_arn=env.get("WATCHDOG_SNS_TOPIC_ARN") or None,
        slack_webhook_parameter=env.get("WATCHDOG_SLACK_WEBHOOK_PARAMETER") or None,
        region=env.get("AWS_REGION", regions[0]),
    )
    prices = {k: float(v) for k, v in json.loads(env.get("WATCHDOG_HOURLY_PRICES") or "{}").items()}
    return watchdog.run_and_notify(regions, Settings.from_environ(env), target, prices=prices)
