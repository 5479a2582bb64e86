"""The pyctl workflow on real Terraform core: a real env.yaml, rendered, its state in S3 (moto, with S3
native locking), a root module of terraform_data standing in for GPU pools and the cache bucket."""

from __future__ import annotations

import json

import pytest

from pyctl.errors import PyctlError
from pyctl.render import render_env
from pyctl.spec import load_env


def test_up_auto_approve_runs_end_to_end_then_destroy(fixture_env, pyctl):
    result = pyctl("up", "--env", fixture_env.dir, "--auto-approve")

    assert result.exit_code == 0, result.output
    assert "Plan: 3 to create, 0 to update, 0 to replace, 0 to delete." in result.stdout
    assert "+16 h100 GPUs (+2 x p5.48xlarge, reserved)" in result.stdout
    assert "+2 l4 GPUs (+2 x g6.xlarge, spot)" in result.stdout

    out = pyctl("output", "--env", fixture_env.dir, "gpu_capacity")
    assert json.loads(out.stdout)["h100-reserved"]["instances"] == 2
    assert pyctl("output", "--env", fixture_env.dir, "model_bucket").stdout == "pyctl-test-models\n"

    again = pyctl("up", "--env", fixture_env.dir, "--auto-approve")
    assert "No changes. Nothing to apply." in again.stdout

    gone = pyctl("destroy", "--env", fixture_env.dir, "--auto-approve")
    assert "Plan: 0 to create, 0 to update, 0 to replace, 3 to delete." in gone.stdout
    assert "-16 h100 GPUs (-2 x p5.48xlarge, reserved)" in gone.stdout
    assert json.loads(pyctl("output", "--env", fixture_env.dir).stdout) == {}


def _plan_out(pyctl, env, tmp_path, name="reviewed.tfplan"):
    plan_file = tmp_path / name
    result = pyctl("plan", "--env", env.dir, "--out", plan_file, "--summary-md", tmp_path / "summary.md")
    assert result.exit_code == 0, result.output
    return plan_file


def test_reviewed_plan_is_applied_with_its_manifest(fixture_env, pyctl, tmp_path):
    plan_file = _plan_out(pyctl, fixture_env, tmp_path)

    manifest = json.loads((tmp_path / "reviewed.tfplan.manifest.json").read_text())
    assert manifest["env"] == "wf-test"
    rendered = render_env(load_env(str(fixture_env.dir)))  # tfvars, backend config, function packages
    assert set(manifest["inputs"]) == {p.relative_to(fixture_env.dir).as_posix() for p in rendered.paths()}
    assert {"backend.hcl", "terraform.tfvars.json", ".pyctl-build/gpu_watchdog.zip"} <= set(
        manifest["inputs"]
    )
    assert manifest["lock_file_sha256"] is None  # terraform_data needs no provider, so no lock file
    assert manifest["terraform_version"].count(".") == 2
    assert "| 3 | 0 | 0 | 0 | 0 |" in (tmp_path / "summary.md").read_text()

    applied = pyctl("apply", "--env", fixture_env.dir, "--plan", plan_file)
    assert applied.exit_code == 0, applied.output
    assert (
        json.loads(pyctl("output", "--env", fixture_env.dir, "gpu_capacity").stdout)["l4-spot"]["instances"]
        == 2
    )


def test_tampered_plan_file_is_refused(fixture_env, pyctl, tmp_path):
    plan_file = _plan_out(pyctl, fixture_env, tmp_path)
    data = bytearray(plan_file.read_bytes())
    data[-1] ^= 0xFF
    plan_file.write_bytes(bytes(data))

    with pytest.raises(PyctlError, match="plan file was modified after it was planned"):
        pyctl("apply", "--env", fixture_env.dir, "--plan", plan_file)


def test_plan_from_another_env_is_refused(make_env, pyctl, tmp_path):
    staging, prod = make_env("wf-staging"), make_env("wf-prod")
    plan_file = _plan_out(pyctl, staging, tmp_path)

    with pytest.raises(PyctlError, match="plan was made for env 'wf-staging', not 'wf-prod'"):
        pyctl("apply", "--env", prod.dir, "--plan", plan_file)


def test_changed_inputs_are_refused(fixture_env, pyctl, tmp_path):
    plan_file = _plan_out(pyctl, fixture_env, tmp_path)
    fixture_env.edit(lambda spec: spec["pools"][1].update(desired=3))

    with pytest.raises(PyctlError, match=r"rendered inputs changed since planning: terraform\.tfvars\.json"):
        pyctl("apply", "--env", fixture_env.dir, "--plan", plan_file)


def test_changed_lock_file_is_refused(fixture_env, pyctl, tmp_path):
    plan_file = _plan_out(pyctl, fixture_env, tmp_path)
    (fixture_env.dir / ".terraform.lock.hcl").write_text("# provider versions changed after review\n")

    with pytest.raises(PyctlError, match=r"\.terraform\.lock\.hcl changed since planning"):
        pyctl("apply", "--env", fixture_env.dir, "--plan", plan_file)


def test_plan_from_another_terraform_version_is_refused(fixture_env, pyctl, tmp_path):
    plan_file = _plan_out(pyctl, fixture_env, tmp_path)
    manifest_file = tmp_path / "reviewed.tfplan.manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["terraform_version"] = "1.9.8"  # what a runner with another terraform would have written
    manifest_file.write_text(json.dumps(manifest))

    with pytest.raises(PyctlError, match=r"terraform version differs: planned with 1\.9\.8, this is 1\."):
        pyctl("apply", "--env", fixture_env.dir, "--plan", plan_file)


def test_plan_without_manifest_is_refused(fixture_env, pyctl, tmp_path):
    plan_file = _plan_out(pyctl, fixture_env, tmp_path)
    (tmp_path / "reviewed.tfplan.manifest.json").unlink()

    with pytest.raises(PyctlError, match="manifest not found"):
        pyctl("apply", "--env", fixture_env.dir, "--plan", plan_file)


def test_stale_plan_is_refused_by_terraform_with_its_reason(fixture_env, pyctl, tmp_path):
    plan_file = _plan_out(pyctl, fixture_env, tmp_path)
    assert pyctl("up", "--env", fixture_env.dir, "--auto-approve").exit_code == 0  # state moves on

    with pytest.raises(
        PyctlError, match=r"Saved plan is stale: The given plan file can no longer be applied"
    ):
        pyctl("apply", "--env", fixture_env.dir, "--plan", plan_file)


def test_detailed_exitcode_reports_drift(fixture_env, pyctl):
    assert pyctl("plan", "--env", fixture_env.dir, "--detailed-exitcode").exit_code == 3  # changes
    pyctl("up", "--env", fixture_env.dir, "--auto-approve")
    assert pyctl("plan", "--env", fixture_env.dir, "--detailed-exitcode").exit_code == 0


def test_protected_env_refuses_to_release_reserved_capacity_without_allow_destroy(make_env, pyctl):
    prod = make_env("wf-prod", protected=True)
    pyctl("up", "--env", prod.dir, "--auto-approve")
    prod.edit(lambda spec: spec["pools"][0].update(max=1))  # the reservation follows max: 2 -> 1

    def reserved_instances():
        return json.loads(pyctl("output", "--env", prod.dir, "gpu_capacity").stdout)["h100-reserved"][
            "instances"
        ]

    with pytest.raises(
        PyctlError, match=r"env wf-prod is protected .* \(pool h100-reserved\); re-run with --allow-destroy"
    ):
        pyctl("up", "--env", prod.dir, "--auto-approve")
    assert reserved_instances() == 2  # nothing applied

    allowed = pyctl("up", "--env", prod.dir, "--auto-approve", "--allow-destroy")
    assert "RELEASES reserved GPU capacity: pool h100-reserved 2 -> 1 reserved instances" in allowed.stdout
    assert reserved_instances() == 1


def test_protected_env_gate_also_guards_a_reviewed_plan(make_env, pyctl, tmp_path):
    prod = make_env("wf-prod", protected=True)
    pyctl("up", "--env", prod.dir, "--auto-approve")
    prod.edit(
        lambda spec: spec["pools"][0].update(instance_type="p5e.48xlarge")
    )  # replaces the reserved pool
    plan_file = _plan_out(pyctl, prod, tmp_path)
    assert "Applying this plan needs --allow-destroy" in (tmp_path / "summary.md").read_text()

    with pytest.raises(PyctlError, match="--allow-destroy"):
        pyctl("apply", "--env", prod.dir, "--plan", plan_file)
    applied = pyctl("apply", "--env", prod.dir, "--plan", plan_file, "--allow-destroy")
    assert applied.exit_code == 0, applied.output


def test_the_installed_pyctl_runs_up_and_reports_refusals_with_exit_codes(make_env, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    pyctl_exe = str(Path(sys.executable).parent / "pyctl")
    prod = make_env("wf-prod", protected=True)

    up = subprocess.run(
        [pyctl_exe, "up", "--env", str(prod.dir), "--auto-approve"], capture_output=True, text=True
    )
    assert up.returncode == 0, up.stderr
    assert "Apply complete! Resources: 3 added" in up.stderr  # terraform's progress, streamed to stderr
    assert "+16 h100 GPUs" in up.stdout

    prod.edit(lambda spec: spec["pools"].pop(0))
    refused = subprocess.run(
        [pyctl_exe, "up", "--env", str(prod.dir), "--auto-approve"], capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[-1].startswith("error: refusing to apply: env wf-prod is protected")


def test_a_failed_replan_leaves_no_manifest_vouching_for_the_old_plan(fixture_env, pyctl, tmp_path):
    plan_file = _plan_out(pyctl, fixture_env, tmp_path)
    (fixture_env.dir / "broken.tf").write_text('output "x" { value = var.not_declared }\n')

    with pytest.raises(PyctlError, match="Reference to undeclared input variable"):
        pyctl("plan", "--env", fixture_env.dir, "--out", plan_file)
    assert not (tmp_path / "reviewed.tfplan.manifest.json").exists()
    with pytest.raises(PyctlError, match="manifest not found"):
        pyctl("apply", "--env", fixture_env.dir, "--plan", plan_file)
