"""Expected and worst-case monthly cost: the pure functions over a table pricer, and `pyctl cost`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyctl.catalog.prices import env_pricer
from pyctl.commands.cost import cost_cmd
from pyctl.core.cost import (
    HOURS_PER_MONTH,
    EnvOutlook,
    PoolUsage,
    expected_instances,
    outlook_markdown,
    outlook_text,
    pool_outlook,
    spot_on_demand_count,
    worst_case_usage,
)
from pyctl.spec import load_env

from .test_cost_cli import invoke

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("desired", "maximum", "hours", "expected"),
    [(0, 6, 300, 1), (0, 6, None, 0), (0, 6, 0, 0), (0, 0, 300, 0), (3, 6, 300, 3), (2, 2, None, 2)],
)
def test_expected_instances(desired, maximum, hours, expected):
    assert expected_instances(desired, maximum, hours) == expected


@pytest.mark.parametrize(
    ("instances", "base", "percent", "on_demand"), [(6, 0, 0, 0), (6, 1, 0, 1), (6, 2, 50, 4), (1, 2, 50, 1)]
)
def test_spot_on_demand_count(instances, base, percent, on_demand):
    assert spot_on_demand_count(instances, base, percent) == on_demand


def usage(kind: str, instances: int, **kw) -> PoolUsage:
    return PoolUsage("p", "aws", kind, "p5.48xlarge", 8, instances, **kw)


def test_a_spot_pool_at_zero_with_expected_hours_costs_its_hours_and_its_max_at_on_demand(pricer):
    expected = usage("spot", expected_instances(0, 6, 300), hours_per_month=300)
    out = pool_outlook(expected, worst_case_usage(expected, max_instances=6), pricer, scaled_from_zero=True)
    assert out.expected.monthly == 1 * 300 * 25.0
    # the worst case bills spot at its ceiling, the on-demand rate
    assert out.worst.monthly == 6 * HOURS_PER_MONTH * 60.0
    assert out.worst.lines[0].kind == "spot" and "spot ceiling" in out.worst.lines[0].price.basis


def test_a_reserved_pool_worst_case_adds_on_demand_instances_beyond_the_reservation(pricer):
    expected = usage("reserved", 2, reserved_instances=2, hours_per_month=100)
    out = pool_outlook(expected, worst_case_usage(expected, max_instances=5), pricer)
    assert out.expected.monthly == 2 * 730 * 50.0
    assert out.worst.monthly == 2 * 730 * 50.0 + 3 * 730 * 60.0


def test_spot_with_an_on_demand_base_at_max(pricer):
    expected = usage("spot", 2, hours_per_month=100, on_demand_instances=1)
    worst = worst_case_usage(expected, max_instances=4, on_demand_at_max=spot_on_demand_count(4, 1, 0))
    out = pool_outlook(expected, worst, pricer)
    assert out.expected.monthly == 1 * 100 * 60.0 + 1 * 100 * 25.0
    assert out.worst.monthly == 4 * 730 * 60.0  # one on demand, three spot at the on-demand ceiling


def test_an_unpriced_pool_is_missing_not_zero(pricer):
    expected = PoolUsage("x", "aws", "spot", "g5.xlarge", 1, 1, hours_per_month=10)
    out = EnvOutlook((pool_outlook(expected, worst_case_usage(expected, max_instances=2), pricer),))
    assert [c.missing for c in out.missing] == [
        "no spot price for aws g5.xlarge",
        "no spot price for aws g5.xlarge",
    ]
    assert "expected ?" in outlook_text(out)[1]


def test_outlook_text_for_the_plan_summary(pricer):
    expected = usage("spot", 1, hours_per_month=300)
    out = EnvOutlook(
        (pool_outlook(expected, worst_case_usage(expected, max_instances=6), pricer, scaled_from_zero=True),)
    )
    assert outlook_text(out) == [
        "Monthly cost: expected $7,500, worst case $262,800 (every pool at max, all month, spot at on-demand)",
        "  p: expected $7,500 (desired 0: costed as 1 instance for its expected hours), worst $262,800 at 6 x p5.48xlarge",
    ]


def test_pyctl_cost_prod_shows_the_spot_burst_pool_expected_and_at_max():
    loaded = load_env(str(REPO / "infra/envs/prod"))
    price = env_pricer({"aws": "us-east-1"}, loaded.spec.pricing)
    on_demand = price("aws", "p5.48xlarge", "on_demand", 8).hourly
    spot = price("aws", "p5.48xlarge", "spot", 8).hourly
    result = invoke(cost_cmd, "--env", REPO / "infra/envs/prod", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    burst = {p["pool"]: p for p in out["pools"]}["h100-spot-burst"]
    assert burst["instances"] == 1 and burst["scaled_from_zero"] is True
    assert burst["monthly"] == pytest.approx(300 * spot, abs=0.01)
    assert burst["worst_case_monthly"] == pytest.approx(6 * 730 * on_demand, abs=0.01)
    assert out["worst_case_monthly_total"] == pytest.approx(
        sum(p["worst_case_monthly"] for p in out["pools"]), abs=0.05
    )
    assert out["monthly_total"] < out["worst_case_monthly_total"]


def test_pyctl_cost_table_has_the_worst_case_column_and_total():
    result = invoke(cost_cmd, "--env", REPO / "infra/envs/prod")
    assert result.exit_code == 0, result.output
    assert "worst case $/month" in result.output
    assert "(6 x 730 h)" in result.output
    assert "/month worst case" in result.output
    assert "* desired is 0: costed as 1 instance" in result.output


def test_outlook_markdown_for_the_pull_request_comment(pricer):
    expected = usage("spot", 1, hours_per_month=300)
    out = EnvOutlook(
        (pool_outlook(expected, worst_case_usage(expected, max_instances=6), pricer, scaled_from_zero=True),)
    )
    assert outlook_markdown(out)[0] == "#### Monthly cost: expected $7,500, worst case $262,800"
    assert "| p | $7,500 (1 instance, expected hours) | $262,800 (6 x p5.48xlarge) |" in outlook_markdown(out)
