"""Monthly cost arithmetic per capacity kind, cost per token, and the cost change of a plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyctl.catalog.prices import env_pricer, plan_cost
from pyctl.core.cost import (
    CostChange,
    PoolUsage,
    cost_change_markdown,
    cost_change_text,
    cost_per_million_tokens,
    env_cost,
    money,
    plan_cost_change,
    plan_regions,
    pool_cost,
)
from pyctl.core.plan import Plan
from pyctl.spec import Pricing, load_env


def usage(kind, instances, **kw):
    itype = kw.pop("instance_type", "p5.48xlarge")
    return PoolUsage("pool", "aws", kind, itype, 8, instances, **kw)


@pytest.mark.parametrize(
    ("pool", "monthly"),
    [
        # reserved: billed 730 h whether used or not, expected hours ignored
        (usage("reserved", 2, hours_per_month=100), 2 * 730 * 50.0),
        # a reservation larger than the running pool is still billed in full
        (usage("reserved", 1, reserved_instances=3), 3 * 730 * 50.0),
        # capacity-reservations-first: instances beyond the reservation run on demand for the expected hours
        (usage("reserved", 3, reserved_instances=2, hours_per_month=100), 2 * 730 * 50.0 + 1 * 100 * 60.0),
        # on demand: expected hours x count; 730 h when not set
        (usage("on_demand", 2, hours_per_month=200), 2 * 200 * 60.0),
        (usage("on_demand", 2), 2 * 730 * 60.0),
        # spot: the spot price; the on-demand base at the on-demand price
        (usage("spot", 4, hours_per_month=300), 4 * 300 * 25.0),
        (usage("spot", 4, hours_per_month=300, on_demand_instances=1), 1 * 300 * 60.0 + 3 * 300 * 25.0),
        # nothing running costs nothing
        (usage("spot", 0), 0.0),
        (usage("on_demand", 3, hours_per_month=0), 0.0),
    ],
)
def test_monthly_cost_per_capacity_kind(pricer, pool, monthly):
    cost = pool_cost(pool, pricer)
    assert not cost.missing
    assert cost.monthly == pytest.approx(monthly)


def test_a_pool_without_a_price_is_named_and_left_out_of_the_total(pricer):
    priced = usage("on_demand", 1, hours_per_month=10)
    unpriced = PoolUsage("mystery", "aws", "on_demand", "g4dn.xlarge", 1, 2)
    report = env_cost([priced, unpriced], pricer)
    assert report.monthly == pytest.approx(600.0)
    assert [p.pool.name for p in report.missing] == ["mystery"]
    assert report.missing[0].missing == "no on_demand price for aws g4dn.xlarge"


def test_cost_per_million_tokens():
    # $10/hour at 2,500 tokens/s: 9M tokens an hour -> $1.111 per 1M tokens
    assert cost_per_million_tokens(10.0, 2500) == pytest.approx(10 / 9)
    assert cost_per_million_tokens(55.04, 1000) == pytest.approx(55.04 / 3.6)
    with pytest.raises(ValueError):
        cost_per_million_tokens(10.0, 0)


def test_cost_change_of_a_fixture_plan(plan_doc, pricer):
    plan = Plan.from_json(plan_doc)
    output = plan.output_changes["gpu_capacity"]
    change = plan_cost_change(output.before, output.after, pricer)
    by_pool = {p.pool: p for p in change.pools}
    # the unchanged spot pool is not listed
    assert sorted(by_pool) == ["a100-legacy", "h100-baseline", "l4-serving"]
    # reservation 2 -> 3 instances: one more p5.48xlarge reserved all month
    assert by_pool["h100-baseline"].delta == pytest.approx(730 * 50.0)
    # new on-demand pool of 4 (no expected hours known from the plan: 730 h)
    assert by_pool["l4-serving"].before is None
    assert by_pool["l4-serving"].delta == pytest.approx(4 * 730 * 1.0)
    # removed pool: its whole cost goes
    assert by_pool["a100-legacy"].after is None
    assert by_pool["a100-legacy"].delta == pytest.approx(-730 * 3.0)
    assert change.total == pytest.approx(36_500 + 2_920 - 2_190)


def test_expected_hours_apply_to_on_demand_pools_but_never_to_reservations(plan_doc, pricer):
    output = Plan.from_json(plan_doc).output_changes["gpu_capacity"]
    hours = {"l4-serving": 100.0, "h100-baseline": 10.0}
    change = plan_cost_change(output.before, output.after, pricer, hours)
    by_pool = {p.pool: p.delta for p in change.pools}
    assert by_pool["l4-serving"] == pytest.approx(4 * 100 * 1.0)
    assert by_pool["h100-baseline"] == pytest.approx(730 * 50.0)


def test_cost_change_of_the_fixture_plan_at_list_prices_with_the_env_discount(plan_doc):
    plan = Plan.from_json(plan_doc)
    assert plan_regions(plan.variables) == {"aws": "us-east-1", "gcp": "us-central1"}
    price = env_pricer(plan_regions(plan.variables), Pricing(discount_percent=8))
    output = plan.output_changes["gpu_capacity"]
    change = plan_cost_change(output.before, output.after, price)
    by_pool = {p.pool: p.delta for p in change.pools}
    # p5.48xlarge us-east-1 list $55.04, reserved at the on-demand rate less 8%
    assert by_pool["h100-baseline"] == pytest.approx(730 * 55.04 * 0.92)
    assert by_pool["l4-serving"] == pytest.approx(4 * 730 * 0.8048 * 0.92)
    assert by_pool["a100-legacy"] == pytest.approx(-730 * 3.673385 * 0.92)


def test_output_entries_that_are_not_pools_are_ignored(pricer):
    before = {"p": {"cloud": "aws", "capacity": "spot", "instance_type": "g6.xlarge", "gpu": "l4",
                    "gpus_per_instance": 1, "instances": 1}}  # fmt: skip
    after = {**before, "p": {**before["p"], "instances": 3}, "junk": "x", "partial": {"cloud": "aws"}}
    change = plan_cost_change(before, after, pricer)
    assert [p.pool for p in change.pools] == ["p"]
    assert change.total == pytest.approx(2 * 730 * 0.4)


def test_rendered_cost_change_text_and_markdown(plan_doc, pricer):
    output = Plan.from_json(plan_doc).output_changes["gpu_capacity"]
    change = plan_cost_change(output.before, output.after, pricer)
    text = "\n".join(cost_change_text(change))
    assert "Monthly cost change: +$37,230/month" in text
    assert "  h100-baseline: $73,000 -> $109,500 (+$36,500)" in text
    assert "  a100-legacy: $2,190 -> - (-$2,190)" in text
    md = "\n".join(cost_change_markdown(change))
    assert "#### Monthly cost change: +$37,230/month" in md
    assert "| l4-serving | - | $2,920 | +$2,920 |" in md


def test_unpriced_pools_are_flagged_in_the_rendered_change(pricer):
    before = {}
    after = {"x": {"cloud": "aws", "capacity": "on_demand", "instance_type": "g4dn.xlarge", "gpu": "t4",
                   "gpus_per_instance": 1, "instances": 1}}  # fmt: skip
    change = plan_cost_change(before, after, pricer)
    assert change.total == 0
    text = "\n".join(cost_change_text(change))
    assert "x: - -> ? (?)" in text
    assert "no on_demand price for aws g4dn.xlarge; add pricing.overrides" in text


def test_no_pool_change_renders_nothing():
    assert cost_change_text(CostChange(())) == []
    assert cost_change_markdown(CostChange(())) == []


@pytest.mark.parametrize(
    ("amount", "signed", "text"),
    [
        (1234.5, False, "$1,234"),
        (57.951, False, "$57.95"),
        (-2190, True, "-$2,190"),
        (0, True, "±$0.00"),
        (36500, True, "+$36,500"),
    ],  # fmt: skip
)
def test_money(amount, signed, text):
    assert money(amount, signed=signed) == text


def test_plan_cost_uses_the_plan_regions_and_the_env_pricing_and_hours(plan_doc):
    spec = load_env(str(Path(__file__).parent / "fixtures" / "env")).spec  # 10% discount, l4-serving 200 h
    change = plan_cost(Plan.from_json(plan_doc), spec)
    by_pool = {p.pool: p.delta for p in change.pools}
    assert by_pool["l4-serving"] == pytest.approx(4 * 200 * 0.8048 * 0.9)
    assert by_pool["h100-baseline"] == pytest.approx(730 * 55.04 * 0.9)
    assert change.total == pytest.approx(sum(by_pool.values()))


def test_plan_cost_of_a_plan_without_the_output_or_with_unknown_values_is_empty(plan_doc):
    assert plan_cost(Plan.from_json({**plan_doc, "output_changes": {}})).pools == ()
    unknown = {**plan_doc["output_changes"]["gpu_capacity"], "after": None, "after_unknown": True}
    assert plan_cost(Plan.from_json({**plan_doc, "output_changes": {"gpu_capacity": unknown}})).pools == ()
