"""Each cloud declares what it cannot do (`pyctl.clouds.features`); env.yaml's checks look the features up
instead of testing the cloud's name, and say the declared reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyctl.clouds.features import UNSUPPORTED, Feature, supports, unsupported
from pyctl.errors import PyctlError
from pyctl.spec import validate_spec

PROD = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "infra" / "envs" / "prod" / "env.yaml").read_text()
)
AWS_RESERVED, AWS_SPOT, GCP_SPOT = 0, 1, 2  # prod's pools


def test_every_feature_is_missing_on_one_cloud_at_most() -> None:
    for feature in Feature:
        assert sum(not supports(cloud, feature) for cloud in ("aws", "gcp")) <= 1, feature
    assert unsupported("gcp", Feature.CAPACITY_BLOCKS) == "capacity blocks are an AWS offering"
    assert unsupported("aws", Feature.CAPACITY_BLOCKS) is None and set(UNSUPPORTED) == {"aws", "gcp"}


def problems(change: Any) -> str:
    doc = copy.deepcopy(PROD)
    change(doc)
    with pytest.raises(PyctlError) as err:
        validate_spec(doc, "env.yaml")
    return str(err.value)


def test_gcp_pool_features_are_refused_with_the_declared_reason() -> None:
    def gcp_pool(doc: dict[str, Any]) -> None:
        pool = doc["pools"][GCP_SPOT]
        pool["spot"] = {**pool.get("spot", {}), "max_price": 9.5, "on_demand_base": 0}
        pool["boot_secrets"] = [{"env_var": "TOKEN", "ssm_parameter": "/x/token"}]
        doc["spot_recovery"]["jobs"].append({"name": "on-gcp", "pool": pool["name"]})

    text = problems(gcp_pool)
    why_spot = unsupported("gcp", Feature.SPOT_MAX_PRICE)
    assert f"pools[2].spot.max_price: {why_spot}" in text
    assert f"pools[2].spot.on_demand_base: {unsupported('gcp', Feature.SPOT_ON_DEMAND_BASE)}" in text
    assert f"pools[2].boot_secrets[0]: {unsupported('gcp', Feature.BOOT_SECRETS)}" in text
    assert f"is a GCP pool: {unsupported('gcp', Feature.SPOT_RECOVERY_JOBS)}" in text


def test_aws_pool_features_are_refused_with_the_declared_reason() -> None:
    def aws_pool(doc: dict[str, Any]) -> None:
        doc["pools"][AWS_SPOT]["distribution"] = "regional"
        doc["pools"][AWS_SPOT]["spot"] = {**doc["pools"][AWS_SPOT]["spot"], "termination_action": "STOP"}

    text = problems(aws_pool)
    assert f"pools[1].distribution: {unsupported('aws', Feature.GROUP_DISTRIBUTION)}" in text
    assert f"pools[1].spot.termination_action: {unsupported('aws', Feature.SPOT_TERMINATION_ACTION)}" in text
