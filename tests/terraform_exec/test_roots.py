"""Every env and every module example: init, validate, plan with the rendered variables, apply the saved
plan, and a re-plan that shows no changes, on real Terraform core with the stand-in providers."""

from __future__ import annotations

import json

import pytest

from .conftest import ENVS, EXAMPLES, EXTRA_ROOTS, local_backend, render_env

ROOTS = [f"envs/{e}" for e in ENVS] + EXAMPLES + sorted(EXTRA_ROOTS)


@pytest.mark.slow
@pytest.mark.parametrize("relative", ROOTS)
def test_root_plans_applies_and_converges(relative: str, root_in, infra_copy) -> None:
    root = root_in(relative)
    if relative.startswith("envs/"):
        render_env(infra_copy, relative.split("/", 1)[1])
    local_backend(root.dir)
    var_args = [f"-var-file={EXTRA_ROOTS[relative]}"] if EXTRA_ROOTS.get(relative) else []

    root.tf("init", "-input=false", "-no-color")
    root.tf("validate", "-no-color")
    root.tf("plan", "-input=false", "-no-color", "-out=first.tfplan", *var_args)
    plan = root.show_json("first.tfplan")
    creates = [rc for rc in plan["resource_changes"] if rc["change"]["actions"] == ["create"]]
    assert creates, f"{relative}: the first plan creates nothing"
    assert all(rc["change"]["actions"] in (["create"], ["read"]) for rc in plan["resource_changes"])

    root.tf("apply", "-input=false", "-no-color", "first.tfplan")
    state = json.loads((root.dir / "terraform.tfstate").read_text())
    instances = sum(len(r["instances"]) for r in state["resources"] if r["mode"] == "managed")
    assert instances == len(creates), (
        f"{relative}: state holds {instances} resources, the plan created {len(creates)}"
    )

    replan = root.tf("plan", "-input=false", "-no-color", "-detailed-exitcode", *var_args, ok=(0, 2))
    assert replan.returncode == 0, (
        f"{relative}: the re-plan after apply is not empty\n{replan.stdout[-6000:]}"
    )
