"""Fixtures for the cost tests: a table pricer with round numbers, fixture paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyctl.core.cost import HourlyPrice, Pricer

FIXTURES = Path(__file__).parent / "fixtures"

# (instance_type, kind) -> $/hour; round figures so expected costs are easy to check by hand.
TABLE = {
    ("p5.48xlarge", "reserved"): 50.0,
    ("p5.48xlarge", "on_demand"): 60.0,
    ("p5.48xlarge", "spot"): 25.0,
    ("g6.xlarge", "on_demand"): 1.0,
    ("g6.xlarge", "spot"): 0.4,
    ("a2-highgpu-1g", "on_demand"): 3.0,
}


def table_pricer(table: dict[tuple[str, str], float] = TABLE) -> Pricer:
    def price(cloud: str, instance_type: str, kind: str, gpus: int) -> HourlyPrice | None:
        hourly = table.get((instance_type, kind))
        return None if hourly is None else HourlyPrice(hourly, "table", "2025-01-01")

    return price


@pytest.fixture
def pricer() -> Pricer:
    return table_pricer()


@pytest.fixture
def plan_doc() -> Any:
    """A `terraform show -json` document whose gpu_capacity output grows, adds and removes pools."""
    return json.loads((FIXTURES / "plan-capacity-change.json").read_text())
