"""Refactors of the modules keep existing state: an env applied with the tree of an earlier commit, then
planned with today's tree, must not destroy, create or replace anything (moved blocks carry the state)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from .conftest import INFRA, REPO_ROOT, Root, local_backend, render_env

pytestmark = pytest.mark.slow

# The last commit before the Lambda plumbing moved into modules/_aws-function.
BEFORE_FUNCTION_MODULE = "dd91c4335d8c425793b8f0acffa4e3819c3bf1cd"


def _tree_at(commit: str, dest: Path) -> None:
    proc = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit, "infra", "scripts"],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"git history with {commit[:10]} is not available in this checkout")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")


@pytest.mark.parametrize("env_name", ["prod"])
def test_applied_env_keeps_its_resources_after_the_refactor(env_name: str, standin, tmp_path: Path) -> None:
    _tree_at(BEFORE_FUNCTION_MODULE, tmp_path)
    infra = tmp_path / "infra"
    render_env(infra, env_name)
    env = standin.environ({k: v for k, v in os.environ.items() if not k.startswith("TF_")})
    env["TF_DATA_DIR"] = str(tmp_path / "tfdata")
    root = Root(infra / "envs" / env_name, env)
    local_backend(root.dir)
    root.tf("init", "-input=false", "-no-color")
    root.tf("apply", "-input=false", "-no-color", "-auto-approve")
    state = (root.dir / "terraform.tfstate").read_bytes()

    # today's tree over the same folder, state kept
    shutil.rmtree(infra / "modules")
    shutil.rmtree(infra / "stacks")
    shutil.copytree(INFRA / "modules", infra / "modules", ignore=shutil.ignore_patterns(".terraform"))
    shutil.copytree(INFRA / "stacks", infra / "stacks", ignore=shutil.ignore_patterns(".terraform"))
    for f in root.dir.glob("*.tf"):  # the env root as it is today (its files were renamed since)
        if f.name != "zz_standin_override.tf":
            f.unlink()
    for f in (INFRA / "envs" / env_name).glob("*.tf"):
        shutil.copy(f, root.dir / f.name)
    render_env(infra, env_name)
    assert (root.dir / "terraform.tfstate").read_bytes() == state

    root.tf("init", "-input=false", "-no-color")
    root.tf("plan", "-input=false", "-no-color", "-out=upgrade.tfplan")
    plan = root.show_json("upgrade.tfplan")
    # Added since that commit and harmless on a live project (enabling an enabled API changes nothing):
    # the APIs the GCP stack turns on (infra/stacks/gcp/services.tf). Nothing else may be created.
    # And the spot pools' on-demand fallback (docs/spot-recovery.md): the rules, targets and permissions of
    # its Auto Scaling launch failures and its schedule, new resources next to the existing rules.
    # And the node agent bundle objects in the model-cache buckets (the bundle replaced a pip install by name).
    added = {"google_project_service", "aws_s3_object", "google_storage_bucket_object"}
    added_keys = ('["fallback-schedule"]', '["launch-unsuccessful"]')
    gcp_added = (".twin[0]", ".fallback_state[0]")
    lost = {
        rc["address"]: rc["change"]["actions"]
        for rc in plan["resource_changes"]
        if "delete" in rc["change"]["actions"]
        or (
            rc["change"]["actions"] == ["create"]
            and rc["type"] not in added
            and not (".spot_recovery[0]." in rc["address"] and rc["address"].endswith(added_keys))
            # The GCP spot fallback: each spot pool's on-demand twin (created at size 0) and the grant on
            # the fallback's state objects, new resources next to the existing ones.
            and not (rc["address"].startswith("module.gcp.") and rc["address"].endswith(gcp_added))
        )
    }
    assert not lost, f"the upgrade would destroy or create:\n{json.dumps(lost, indent=1)}"
    moved = {rc["previous_address"] for rc in plan["resource_changes"] if rc.get("previous_address")}
    assert "module.aws.module.gpu_watchdog[0].aws_lambda_function.this" in moved
    assert "module.aws.module.spot_recovery[0].aws_lambda_function.this" in moved
