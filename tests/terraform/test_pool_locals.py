"""The aws-gpu-pool module's resource-free half, evaluated by Terraform core for every pool of every env.

The AWS provider cannot be downloaded, so the module cannot be planned. Its `variables.tf` (types, defaults,
validation blocks) and `locals.tf` (tags, security group rules, the rendered node bootstrap) need no
provider: they are copied into a scratch tree (with a link to the node templates), a root module in JSON syntax calls
the copy once per pool with the arguments infra/stacks/aws/main.tf passes, and `terraform apply` of that
root (outputs only) evaluates them. The user data each pool's nodes would boot is then shellchecked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .test_env_wiring import ENVS, rendered_tfvars
from .tfconfig import INFRA

POOL = INFRA / "modules" / "aws-gpu-pool"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"

# What the copy exposes: the locals the resources use.
EVAL_TF = """
variable "eval_region" {
  type    = string
  default = "us-east-1"
}

locals {
  region = var.eval_region
}

output "evaluated" {
  value = {
    name          = local.name
    tags          = local.tags
    ingress_rules = local.ingress_rules
    egress_rules  = local.egress_rules
    user_data     = local.user_data
  }
}
"""


def pool_arguments(tfvars: dict[str, Any], name: str, pool: dict[str, Any]) -> dict[str, Any]:
    """The arguments infra/stacks/aws/main.tf gives `module "pool"` for one rendered pool."""
    versions = {m["name"]: m["version"] for m in tfvars["model_cache"]["models"]}  # the last listed wins
    reservation = pool.get("reservation")
    offering = (reservation or {}).get("capacity_block_offering_id")
    return {
        "name": name,
        "env": tfvars["env"]["name"],
        "capacity": pool["capacity"],
        "instance_type": pool["instance_type"],
        "instance_types": pool["instance_types"],
        "gpu": pool["gpu"],
        "gpus_per_instance": pool["gpus_per_instance"],
        "vpc_id": tfvars["aws"]["vpc_id"],
        "subnet_ids": tfvars["aws"]["subnet_ids"],
        "availability_zone": pool["zones"][0] if pool["capacity"] == "reserved" else None,
        "min_size": pool["min_size"],
        "desired_size": pool["desired_size"],
        "max_size": pool["max_size"],
        "spot": pool["spot"],
        "reservation": None
        if reservation is None
        else {k: reservation[k] for k in ("instance_count", "match", "end_date")},
        "capacity_block": None if offering is None else {"offering_id": offering},
        "root_volume_gb": pool["root_volume_gb"],
        "ingress": pool["ingress"],
        "model_cache": {
            "bucket": tfvars["model_cache"]["aws"]["bucket"],
            "key_prefix": "",
            "read_policy_json": "{}",
            "write_policy_json": "{}",
        },
        "model": None
        if pool["model"] is None
        else {"name": pool["model"], "version": versions[pool["model"]]},
        "nvme_path": tfvars["model_cache"]["nvme_path"],
        # What the stack passes: aws-model-cache's agent_bundle output (the bundle's key and hash).
        "agent_bundle": {
            "bucket": tfvars["model_cache"]["aws"]["bucket"],
            "key": "agent/" + "ab" * 32 + ".tar.gz",
            "sha256": "ab" * 32,
        },
        "boot_secrets": pool.get("boot_secrets", []),
        "auto_shutdown": pool["auto_shutdown"],
        "watchdog_may_terminate": pool["watchdog_may_terminate"],
        "tags": {**tfvars["tags"], **pool["tags"]},
    }


def env_cases() -> dict[str, dict[str, Any]]:
    cases = {}
    for env in ENVS:
        tfvars = rendered_tfvars(env)
        for name, pool in tfvars["aws_pools"].items():
            cases[f"{env}--{name}"] = pool_arguments(tfvars, name, pool)
    return cases


def extra_cases(cases: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What no shipped env uses yet: boot secrets, a key prefix, a CostCenter override, no intra-pool rule."""
    spot = next(c for c in cases.values() if c["capacity"] == "spot")
    return {
        "extra--secrets": {
            **spot,
            "name": "secrets",
            "boot_secrets": [
                {"env_var": "HF_TOKEN", "ssm_parameter": "/pyctl/dev/hf-token"},
                {"env_var": "WANDB_API_KEY", "secrets_manager_secret": "dev/wandb"},
            ],
            "model_cache": {**spot["model_cache"], "key_prefix": "team-a/"},
            "cost_center": "research",
            "allow_intra_pool": False,
        }
    }


@pytest.fixture(scope="module")
def evaluated(run_terraform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    scratch = tmp_path_factory.mktemp("pool-locals")
    copy = scratch / "infra" / "modules" / "aws-gpu-pool"
    copy.mkdir(parents=True)
    for name in ("variables.tf", "locals.tf"):
        shutil.copy(POOL / name, copy / name)
    (copy / "eval.tf").write_text(EVAL_TF)
    (copy / "templates").symlink_to(POOL / "templates")
    root = scratch / "root"
    root.mkdir()
    cases = env_cases()
    cases.update(extra_cases(cases))
    document = {
        "module": {k: {"source": "../infra/modules/aws-gpu-pool", **v} for k, v in cases.items()},
        "output": {k: {"value": f"${{module.{k}.evaluated}}"} for k in cases},
    }
    (root / "main.tf.json").write_text(json.dumps(document, indent=2))
    for args in (
        ("init", "-input=false", "-no-color"),
        ("apply", "-auto-approve", "-input=false", "-no-color"),
    ):
        proc = run_terraform(*args, cwd=root)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_terraform("output", "-json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return {k: v["value"] for k, v in json.loads(proc.stdout).items()}


def test_every_aws_pool_of_every_env_is_evaluated(evaluated: dict[str, dict[str, Any]]) -> None:
    names = set(evaluated)
    assert {"prod--h100-baseline", "prod--h100-spot-burst", "dev--l4-spot", "extra--secrets"} <= names


def test_tags_say_what_the_watchdog_and_recovery_read(evaluated: dict[str, dict[str, Any]]) -> None:
    baseline = evaluated["prod--h100-baseline"]["tags"]
    assert baseline["AutoShutdown"] == "false"  # auto_shutdown: false in prod's env.yaml
    assert (baseline["pyctl:capacity"], baseline["CapacityKind"]) == ("reserved", "reserved")
    assert (baseline["pyctl:env"], baseline["Env"], baseline["pyctl:pool"]) == (
        "prod",
        "prod",
        "h100-baseline",
    )
    assert baseline["CostCenter"] == "ml-inference"  # from the env's cost_center
    assert "pyctl:job" not in baseline and "pyctl:spot-fallback" not in baseline
    burst = evaluated["prod--h100-spot-burst"]["tags"]
    assert (burst["AutoShutdown"], burst["pyctl:job"], burst["pyctl:spot-fallback"]) == (
        "true",
        "h100-spot-burst",
        "on_demand",
    )
    assert evaluated["dev--l4-spot"]["tags"]["pyctl:spot-terminate"] == "true"
    assert evaluated["extra--secrets"]["tags"]["CostCenter"] == "research"


def test_ingress_only_from_the_named_sources_and_ports(evaluated: dict[str, dict[str, Any]]) -> None:
    rules = evaluated["prod--h100-baseline"]["ingress_rules"]
    assert set(rules) == {"sg-0c1d2e3f4a5b60301:8000", "sg-0c1d2e3f4a5b60301:9400", "intra-pool"}
    assert rules["intra-pool"] == {"cidr": None, "security_group": "self", "port": None}
    dev = evaluated["dev--l4-spot"]["ingress_rules"]
    assert set(dev) == {"10.20.0.0/16:8000", "10.20.0.0/16:9400", "intra-pool"}
    assert set(evaluated["extra--secrets"]["egress_rules"]) == {"0.0.0.0/0:80", "0.0.0.0/0:443"}


@pytest.mark.parametrize("case", sorted(env_cases()) + ["extra--secrets"])
def test_each_pools_user_data_is_shellcheck_clean(
    case: str, evaluated: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "user-data.sh"
    path.write_text(evaluated[case]["user_data"])
    proc = subprocess.run(
        [str(SHELLCHECK), "--shell=bash", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout
    assert len(path.read_bytes()) < 16 * 1024


def test_user_data_follows_the_env(evaluated: dict[str, dict[str, Any]]) -> None:
    baseline = evaluated["prod--h100-baseline"]["user_data"]
    assert "readonly MODEL_NAME='llama-3-70b-instruct'" in baseline
    assert "readonly MODEL_VERSION='2024-07-23'" in baseline
    assert "  start_spot_watcher" not in baseline.split("main() {", 1)[1]
    burst = evaluated["prod--h100-spot-burst"]["user_data"]
    main = burst.split("main() {", 1)[1]
    assert '  start_spot_watcher "$job"\n' in main and "  fetch_model\n" not in main  # no model in env.yaml
    secrets = evaluated["extra--secrets"]["user_data"]
    assert "'HF_TOKEN=ssm:/pyctl/dev/hf-token' 'WANDB_API_KEY=secretsmanager:dev/wandb'" in secrets
    assert "readonly KEY_PREFIX='team-a/'" in secrets
