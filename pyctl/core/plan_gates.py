"""Safety gates: which flags a plan needs before pyctl will apply it."""

from __future__ import annotations

from pyctl.core.plan_summary import PlanSummary


def gate_refusals(summary: PlanSummary, *, allow_destroy: bool, confirm_purchase: bool) -> list[str]:
    """One line per reason to refuse the plan; empty when it may be applied."""
    refusals = []
    destroys = summary.gated("allow_destroy")
    if destroys and not allow_destroy:
        what = ", ".join(f.address for f in destroys[:5]) + (" ..." if len(destroys) > 5 else "")
        refusals.append(
            f"env {summary.env} is protected and this plan destroys or replaces reserved capacity or a "
            f"cache bucket ({what}); re-run with --allow-destroy if that is intended"
        )
    purchases = summary.gated("confirm_purchase")
    if purchases and not confirm_purchase:
        what = ", ".join(f.address for f in purchases)
        refusals.append(
            f"this plan buys an EC2 capacity block ({what}), which destroy cannot undo; "
            "re-run with --confirm-purchase to buy it"
        )
    return refusals
