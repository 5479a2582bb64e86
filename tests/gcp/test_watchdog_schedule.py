"""The stack's conversion of env.yaml's EventBridge-style schedule to Cloud Scheduler's unix-cron, evaluated
by real Terraform core on the expression as written in infra/stacks/gcp/watchdog.tf."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
WATCHDOG_TF = REPO_ROOT / "infra" / "stacks" / "gcp" / "watchdog.tf"
TERRAFORM = Path(sys.executable).parent / "pyctl-terraform"

CASES = {
    "rate(15 minutes)": "*/15 * * * *",
    "rate(1 minute)": "*/1 * * * *",
    "rate(2 hours)": "0 */2 * * *",
    "cron(0/10 8-20 ? * MON-FRI *)": "0/10 8-20 * * MON-FRI",
    "*/5 * * * *": "*/5 * * * *",  # already unix-cron: kept
}


def schedule_expression() -> str:
    text = WATCHDOG_TF.read_text()
    match = re.search(r"watchdog_schedule = (try\(.*?\n  \))", text, re.S)
    assert match, "watchdog_schedule not found in watchdog.tf"
    return match.group(1).replace("var.watchdog.schedule", "var.schedule")


@pytest.mark.skipif(not TERRAFORM.exists(), reason="pyctl-terraform is not installed")
def test_schedules_convert_to_unix_cron(tmp_path: Path) -> None:
    outputs = "\n".join(
        f'output "o{i}" {{\n  value = {schedule_expression().replace("var.schedule", json.dumps(s))}\n}}'
        for i, s in enumerate(CASES)
    )
    (tmp_path / "main.tf").write_text(outputs + "\n")
    (tmp_path / "empty.tfrc").write_text("")
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(tmp_path / "empty.tfrc"), "TF_IN_AUTOMATION": "1"}
    for args in (
        ["init", "-input=false", "-no-color"],
        ["apply", "-auto-approve", "-input=false", "-no-color"],
    ):
        proc = subprocess.run(
            [str(TERRAFORM), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(
        [str(TERRAFORM), "output", "-json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    values = json.loads(proc.stdout)
    assert [values[f"o{i}"]["value"] for i in range(len(CASES))] == list(CASES.values())
