"""What each cloud cannot do: a stateless description, no SDK (SkyPilot's `CloudImplementationFeatures`).

Callers ask `unsupported(cloud, feature)` instead of testing `cloud == "gcp"`; a cloud that gains a feature
loses one line here, and every rule that depends on it follows (the env.yaml checks in `pyctl.spec`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Feature(enum.Enum):
    """Something a pool (or a job on it) may ask of its cloud."""

    CAPACITY_BLOCKS = "capacity blocks (reserved GPU capacity bought for a fixed window)"
    OPEN_RESERVATION_MATCH = (
        "launching outside the pool's reservation (match other than capacity-reservations-only)"
    )
    GROUP_DISTRIBUTION = "a zone distribution policy of the pool's instance group"
    BOOT_SECRETS = "boot secrets read from SSM / Secrets Manager"
    SPOT_INSTANCE_TYPES = "spot pools over several instance types"
    SPOT_ON_DEMAND_BASE = "an on-demand base in a spot pool"
    SPOT_MAX_PRICE = "a maximum spot price"
    SPOT_TERMINATION_ACTION = "choosing what preemption does to a Spot VM (STOP or DELETE)"
    SPOT_RECOVERY_JOBS = "standalone spot jobs replaced by the spot recovery function"


# cloud -> feature -> why it is not supported (the message a user reads).
UNSUPPORTED: Mapping[str, Mapping[Feature, str]] = {
    "aws": {
        Feature.GROUP_DISTRIBUTION: "applies to GCP managed instance groups only",
        Feature.SPOT_TERMINATION_ACTION: "applies to GCP Spot VMs only",
    },
    "gcp": {
        Feature.CAPACITY_BLOCKS: "capacity blocks are an AWS offering",
        Feature.OPEN_RESERVATION_MATCH: "GCP pools always consume their specific reservation",
        Feature.BOOT_SECRETS: "boot secrets are read from SSM / Secrets Manager (AWS pools)",
        Feature.SPOT_INSTANCE_TYPES: "applies to AWS spot pools only",
        Feature.SPOT_ON_DEMAND_BASE: "applies to AWS spot pools only",
        Feature.SPOT_MAX_PRICE: "applies to AWS spot pools only",
        Feature.SPOT_RECOVERY_JOBS: "GCP Spot VMs restart through their instance group",
    },
}


def unsupported(cloud: str, feature: Feature) -> str | None:
    """Why `cloud` cannot do `feature`, or None when it can."""
    return UNSUPPORTED.get(cloud, {}).get(feature)


def supports(cloud: str, feature: Feature) -> bool:
    return unsupported(cloud, feature) is None
