"""The watchdog and the spot fallback own the running size of a pool: after an apply, a size changed
outside Terraform (what the watchdog's scale-in does through the API) gives an empty re-plan; Terraform
still sees drift in what it owns (a changed max size)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import Root, local_backend, render_env

pytestmark = pytest.mark.slow

# The size attribute the watchdog/fallback change, per resource type (ignore_changes in the modules).
SIZES = {
    "aws_autoscaling_group": "desired_capacity",
    "google_compute_region_instance_group_manager": "target_size",
    "google_compute_instance_group_manager": "target_size",
}
# An attribute Terraform keeps owning, per type: changing it in the state must show up in the plan.
OWNED = {
    "aws_autoscaling_group": "max_size",
    "google_compute_region_instance_group_manager": "description",
    "google_compute_instance_group_manager": "description",
}


def _edit_state(root: Root, edit: Callable[[str, dict[str, Any]], bool]) -> set[str]:
    """Apply `edit(type, attributes)` to every managed instance in the local state; the types it changed."""
    path = root.dir / "terraform.tfstate"
    state = json.loads(path.read_text())
    changed = set()
    for resource in state["resources"]:
        if resource["mode"] != "managed":
            continue
        for instance in resource["instances"]:
            if edit(resource["type"], instance["attributes"]):
                changed.add(resource["type"])
    state["serial"] += 1
    path.write_text(json.dumps(state))
    return changed


def _plan_exit(root: Root) -> tuple[int, str]:
    proc = root.tf("plan", "-input=false", "-no-color", "-detailed-exitcode", ok=(0, 2))
    return proc.returncode, proc.stdout


def _scale(kind: str, attributes: dict[str, Any]) -> bool:
    if kind not in SIZES:
        return False
    attributes[SIZES[kind]] = (attributes[SIZES[kind]] or 0) + 1  # the watchdog/fallback resized it
    return True


@pytest.mark.parametrize(
    ("relative", "expected_types"),
    [
        ("envs/prod", {"aws_autoscaling_group", "google_compute_region_instance_group_manager"}),
        ("modules/gcp-gpu-pool/examples/reserved-n1-t4", {"google_compute_instance_group_manager"}),
    ],
)
def test_a_size_changed_by_the_watchdog_is_not_undone(
    relative: str, expected_types: set[str], root_in: Any, infra_copy: Any
) -> None:
    if relative.startswith("envs/"):
        render_env(infra_copy, relative.removeprefix("envs/"))
    root: Root = root_in(relative)
    local_backend(root.dir)
    root.tf("init", "-input=false", "-no-color")
    root.tf("apply", "-input=false", "-no-color", "-auto-approve")
    try:
        assert _edit_state(root, _scale) == expected_types
        code, out = _plan_exit(root)
        assert code == 0, f"a re-plan would undo the watchdog's size:\n{out[-4000:]}"

        def owned(kind: str, attributes: dict[str, Any]) -> bool:
            if kind not in OWNED:
                return False
            value = attributes[OWNED[kind]]
            attributes[OWNED[kind]] = value + 1 if isinstance(value, int) else f"{value} (changed)"
            return True

        assert _edit_state(root, owned) == expected_types
        code, out = _plan_exit(root)
        assert code == 2, "drift in an attribute Terraform owns must still show up"
        for kind in expected_types:
            assert f"{kind}." in out
    finally:
        for leftover in root.dir.glob("terraform.tfstate*"):
            leftover.unlink()
