"""`pyctl render --env ENV` produces variables the env's root module accepts.

Offline, without the AWS provider: (1) every key of the rendered terraform.tfvars.json is a variable the
root module declares, and every variable it requires is rendered; (2) the values the root module hands to
the AWS stack pass the stack's real type constraints and validation blocks, checked by Terraform core itself:
a scratch root module holding only the stack's variables.tf is planned with those values (no resources, so no
provider is needed)."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyctl.render import AGENT_BUNDLES_FILE, TFVARS_FILE, render_env
from pyctl.spec import load_env

from .tfconfig import INFRA, load_module

ENVS = sorted(p.parent.name for p in (INFRA / "envs").glob("*/env.yaml"))
STACK_VARIABLES = INFRA / "stacks" / "aws" / "variables.tf"


def rendered_tfvars(env: str) -> dict[str, Any]:
    rendered = render_env(load_env(str(INFRA / "envs" / env)))
    data: dict[str, Any] = json.loads(rendered.files[TFVARS_FILE])
    # Terraform also loads the generated *.auto.tfvars.json (function zips, agent bundles).
    data.update(json.loads(rendered.generated.get(AGENT_BUNDLES_FILE, b"{}")))
    return data


def stack_inputs(env: str, tfvars: dict[str, Any]) -> dict[str, Any]:
    """The values the env's `module "aws"` passes to infra/stacks/aws, from the rendered root variables."""
    call = load_module(INFRA / "envs" / env).labelled("module")["aws"]
    inputs = {}
    for argument, expr in call.items():
        match = re.fullmatch(r"\$\{var\.(\w+)\}", str(expr))
        if match and argument != "source":
            inputs[argument] = tfvars.get(match.group(1))
    return {k: v for k, v in inputs.items() if v is not None}


@pytest.fixture
def plan_stack_variables(
    run_terraform: Callable[..., Any], tmp_path: Path
) -> Callable[[dict[str, Any]], Any]:
    root = tmp_path / "stack-variables"
    root.mkdir()
    shutil.copy(STACK_VARIABLES, root / "variables.tf")
    init = run_terraform("init", "-input=false", "-no-color", cwd=root)
    assert init.returncode == 0, init.stderr

    def plan(values: dict[str, Any]) -> Any:
        (root / "stack.tfvars.json").write_text(json.dumps(values))
        return run_terraform(
            "plan", "-input=false", "-no-color", "-lock=false", "-var-file=stack.tfvars.json", cwd=root
        )

    return plan


@pytest.mark.parametrize("env", ENVS)
def test_every_rendered_variable_is_declared_by_the_root_module(env: str) -> None:
    tfvars = rendered_tfvars(env)
    declared = load_module(INFRA / "envs" / env).labelled("variable")
    assert sorted(set(tfvars) - set(declared)) == []
    required = {name for name, body in declared.items() if "default" not in body}
    assert sorted(required - set(tfvars)) == []


@pytest.mark.parametrize("env", [e for e in ENVS if rendered_tfvars(e).get("aws") is not None])
def test_rendered_values_pass_the_aws_stack_types_and_validations(env: str, plan_stack_variables) -> None:
    inputs = stack_inputs(env, rendered_tfvars(env))
    assert {"env", "tags", "aws", "pools", "model_cache"} <= set(inputs)
    proc = plan_stack_variables(inputs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No changes" in proc.stdout


def test_stack_validations_reject_bad_pools_with_clear_messages(plan_stack_variables) -> None:
    inputs = stack_inputs("prod", rendered_tfvars("prod"))
    pools = inputs["pools"]
    reserved = next(p for p in pools.values() if p["capacity"] == "reserved")
    spot = next(p for p in pools.values() if p["capacity"] == "spot")
    bad = copy.deepcopy(inputs)
    bad["pools"] = {
        "kind": {**spot, "capacity": "preemptible"},
        "family": {**copy.deepcopy(spot), "instance_type": "m5.large", "instance_types": ["m5.large"]},
        "strategy": {**spot, "spot": {**spot["spot"], "allocation_strategy": "cheapest"}},
        "sizes": {**reserved, "min_size": 3, "desired_size": 2},
        "zones": {**reserved, "zones": ["us-east-1a", "us-east-1b"]},
    }
    proc = plan_stack_variables(bad)
    assert proc.returncode != 0
    errors = re.sub(r"\s+", " ", proc.stderr)
    for message in (
        "Every pool's capacity must be one of: reserved, on_demand, spot.",
        "Pool instance types must be accelerated types",
        "spot.allocation_strategy must be one of: price-capacity-optimized",
        "Every pool needs 0 <= min_size <= desired_size <= max_size.",
        "A reserved pool lists exactly one zone",
    ):
        assert message in errors, message


def test_a_type_mismatch_is_refused_by_terraform_core(plan_stack_variables) -> None:
    inputs = stack_inputs("prod", rendered_tfvars("prod"))
    bad = copy.deepcopy(inputs)
    next(iter(bad["pools"].values()))["min_size"] = "two"
    proc = plan_stack_variables(bad)
    assert proc.returncode != 0
    assert "Invalid value for input variable" in proc.stderr or "Invalid value for variable" in proc.stderr


def test_gpu_capacity_output_has_the_keys_the_plan_summary_and_cost_read() -> None:
    from pyctl.core.cost import pools_from_output

    pool_outputs = load_module(INFRA / "modules" / "aws-gpu-pool").labelled("output")
    value = pool_outputs["gpu_capacity"]["value"]
    assert set(value) == {"cloud", "capacity", "instance_type", "gpu", "gpus_per_instance", "instances"}
    assert value["cloud"] == "aws"
    # Reserved pools report the reservation's size, the others their desired size.
    assert "var.reservation.instance_count" in value["instances"] and "var.desired_size" in value["instances"]
    sample = {"cloud": "aws", "capacity": "spot", "instance_type": "p5.48xlarge", "gpu": "h100"}
    parsed = pools_from_output({"burst": {**sample, "gpus_per_instance": 8, "instances": 2}})
    assert parsed["burst"].gpus_per_instance * parsed["burst"].instances == 16
    stack_output = load_module(INFRA / "stacks" / "aws").labelled("output")["gpu_capacity"]["value"]
    assert "pool.gpu_capacity" in stack_output and "module.pool" in stack_output
