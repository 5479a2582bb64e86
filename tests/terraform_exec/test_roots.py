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
    if relative.startswith("envs/"):
        _root_types_keep_every_rendered_value(root)
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


def _subset_problems(given: object, seen: object, path: str) -> list[str]:
    """Where `seen` (after the root variables' type conversion) lost or changed part of `given`."""
    if given is None:
        return []
    if isinstance(given, dict):
        if not isinstance(seen, dict):
            return [f"{path}: became {seen!r}"]
        return [p for k, v in given.items() for p in _subset_problems(v, seen.get(k), f"{path}.{k}")]
    if isinstance(given, list):
        if not isinstance(seen, list) or len(seen) != len(given):
            return [f"{path}: became {seen!r}"]
        return [
            p
            for i, (g, s) in enumerate(zip(given, seen, strict=True))
            for p in _subset_problems(g, s, f"{path}[{i}]")
        ]
    return [] if given == seen else [f"{path}: {given!r} became {seen!r}"]


def _root_types_keep_every_rendered_value(root) -> None:
    """The env root's typed variables hand the stacks every rendered value (a root type that lacked an
    attribute would drop it silently and the stack would use its default)."""
    tfvars = json.loads((root.dir / "terraform.tfvars.json").read_text())
    expression = "jsonencode({" + ", ".join(f"{k} = var.{k}" for k in sorted(tfvars)) + "})"
    out = root.tf("console", "-no-color", stdin=expression + "\n").stdout.strip()
    seen = json.loads(json.loads(out))
    problems = _subset_problems(tfvars, seen, "var")
    assert not problems, "the root variables' types lose rendered values:\n" + "\n".join(problems[:20])
