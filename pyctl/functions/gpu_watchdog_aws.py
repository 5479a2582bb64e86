"""Scheduled entry point of the idle-GPU watchdog (AWS Lambda, python3.12): `pyctl.functions.gpu_watchdog_aws.handler`.

Thin on purpose: the environment written by infra/modules/aws-gpu-watchdog is parsed once into a typed
`WatchdogEnvironment`, the work is `pyctl.clouds.aws.watchdog.run_and_notify`, and the return value is the
run's summary.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyctl.clouds.aws import watchdog
from pyctl.core.idle import Settings


@dataclass(frozen=True)
class WatchdogEnvironment:
    """What the function's environment says: where to look, where to report, at what prices, how."""

    regions: tuple[str, ...]
    notify: watchdog.Notify
    settings: Settings
    prices: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> WatchdogEnvironment:
        """`WATCHDOG_REGIONS` (comma-separated; default `AWS_REGION`), `WATCHDOG_SNS_TOPIC_ARN`,
        `WATCHDOG_SLACK_WEBHOOK_PARAMETER`, `WATCHDOG_HOURLY_PRICES` (JSON) and the settings' variables, of
        which `WATCHDOG_ENV` is required here."""
        listed = env.get("WATCHDOG_REGIONS", env.get("AWS_REGION", ""))
        regions = tuple(r.strip() for r in listed.split(",") if r.strip())
        if not regions:
            raise ValueError("WATCHDOG_REGIONS (or AWS_REGION) must name at least one region")
        notify = watchdog.Notify(
            sns_topic_arn=env.get("WATCHDOG_SNS_TOPIC_ARN") or None,
            slack_webhook_parameter=env.get("WATCHDOG_SLACK_WEBHOOK_PARAMETER") or None,
            region=env.get("AWS_REGION", regions[0]),
        )
        prices = {k: float(v) for k, v in json.loads(env.get("WATCHDOG_HOURLY_PRICES") or "{}").items()}
        settings = Settings.from_environ(env)
        if not settings.env:  # the deployed watchdog acts on its own env only, never account-wide
            raise ValueError("WATCHDOG_ENV must name the env whose instances the watchdog may act on")
        return cls(regions, notify, settings, prices)


def handler(event: Any, context: Any) -> dict[str, Any]:
    config = WatchdogEnvironment.from_environ(os.environ)
    return watchdog.run_and_notify(
        list(config.regions),
        config.settings,
        config.notify,
        prices=config.prices,
        log_pointer=watchdog.log_location(os.environ),
    )
