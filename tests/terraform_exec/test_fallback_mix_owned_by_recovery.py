"""The spot recovery's on-demand fallback owns a spot pool's on-demand percentage: after an apply, the
percentage changed outside Terraform (what UpdateAutoScalingGroup does during a cool-down) gives an empty
re-plan, while the rest of the mixed-instances policy (the on-demand base) is still Terraform's."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import Root, local_backend, render_env

pytestmark = pytest.mark.slow


def _edit_distributions(root: Root, edit: Callable[[dict[str, Any]], None]) -> int:
    """Apply `edit` to every spot group's instances_distribution in the local state; how many."""
    path = root.dir / "terraform.tfstate"
    state = json.loads(path.read_text())
    edited = 0
    for resource in state["resources"]:
        if resource["mode"] != "managed" or resource["type"] != "aws_autoscaling_group":
            continue
        for instance in resource["instances"]:
            for policy in instance["attributes"].get("mixed_instances_policy") or []:
                for distribution in policy["instances_distribution"]:
                    edit(distribution)
                    edited += 1
    state["serial"] += 1
    path.write_text(json.dumps(state))
    return edited


def test_the_fallbacks_on_demand_percentage_is_not_undone(root_in: Any, infra_copy: Any) -> None:
    render_env(infra_copy, "prod")
    root: Root = root_in("envs/prod")
    local_backend(root.dir)
    root.tf("init", "-input=false", "-no-color")
    root.tf("apply", "-input=false", "-no-color", "-auto-approve")
    try:

        def on_demand(distribution: dict[str, Any]) -> None:
            distribution["on_demand_percentage_above_base_capacity"] = 100

        assert _edit_distributions(root, on_demand) >= 1
        proc = root.tf("plan", "-input=false", "-no-color", "-detailed-exitcode", ok=(0, 2))
        assert proc.returncode == 0, f"a re-plan would undo the fallback:\n{proc.stdout[-4000:]}"

        def base(distribution: dict[str, Any]) -> None:
            distribution["on_demand_base_capacity"] = (distribution["on_demand_base_capacity"] or 0) + 1

        _edit_distributions(root, base)
        proc = root.tf("plan", "-input=false", "-no-color", "-detailed-exitcode", ok=(0, 2))
        assert proc.returncode == 2, "drift in the on-demand base (Terraform's) must still show up"
        assert "on_demand_base_capacity" in proc.stdout
    finally:
        for leftover in root.dir.glob("terraform.tfstate*"):
            leftover.unlink()
