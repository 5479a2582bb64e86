"""The monthly cost change section of the plan summary (terminal text and pull-request Markdown)."""

from __future__ import annotations

from pathlib import Path

from pyctl.catalog.prices import plan_cost
from pyctl.core.plan import Plan
from pyctl.core.plan_summary import render_markdown, render_text, summarize
from pyctl.spec import load_env

ENV_DIR = Path(__file__).parent / "fixtures" / "env"


def test_plan_summary_shows_the_monthly_cost_change_per_pool(plan_doc):
    plan = Plan.from_json(plan_doc)
    cost = plan_cost(plan, load_env(str(ENV_DIR)).spec)  # 10% discount; l4-serving expected 200 h
    summary = summarize(plan, env="prod", protected=True, cost_change=cost)
    text = render_text(summary)
    # +1 reserved p5.48xlarge all month, +4 g6.xlarge for 200 h, -1 a2-highgpu-1g all month
    delta = 730 * 55.04 * 0.9 + 4 * 200 * 0.8048 * 0.9 - 730 * 3.673385 * 0.9
    assert f"Monthly cost change: +${delta:,.0f}/month" in text
    assert "  h100-baseline: $72,323 -> $108,484 (+$36,161)" in text
    assert text.index("GPU capacity:") < text.index("Monthly cost change") < text.index("!!! ATTENTION !!!")
    md = render_markdown(summary)
    assert f"#### Monthly cost change: +${delta:,.0f}/month" in md
    assert "| a100-legacy | $2,413 | - | -$2,413 |" in md


def test_a_summary_without_a_cost_change_has_no_cost_section(plan_doc):
    summary = summarize(Plan.from_json(plan_doc), env="prod", protected=False)
    assert "Monthly cost change" not in render_text(summary)
    assert "Monthly cost change" not in render_markdown(summary)
