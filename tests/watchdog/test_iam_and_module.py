"""The module's IAM policy grants exactly what the code calls; its settings are the ones the code reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pyctl.clouds.aws import watchdog
from pyctl.core import idle
from pyctl.core.idle import Settings

from .conftest import REGION, CallRecorder, Fleet
from .tfviews import module_locals, policy_document

MODULE = Path(__file__).resolve().parents[2] / "infra" / "modules" / "aws-gpu-watchdog"
HANDLER = Path(__file__).resolve().parents[2] / "pyctl" / "functions" / "gpu_watchdog_aws.py"


def resolve(text: str, local: dict[str, Any]) -> str:
    """Replace `${local.name}` where the local is a plain string."""
    return re.sub(r"\$\{local\.(\w+)\}", lambda m: str(local[m.group(1)]), text)


def code_statements() -> list[dict[str, Any]]:
    """Statements of data.aws_iam_policy_document.code, static and `dynamic` alike, locals resolved."""
    local = module_locals(MODULE)
    body = policy_document(MODULE, "code")
    statements = list(body.get("statement", []))
    for dyn in body.get("dynamic", []):
        statements.extend(dyn["statement"]["content"])
    return json.loads(resolve(json.dumps(statements), local))


def test_policy_grants_exactly_the_declared_permissions() -> None:
    declared = watchdog.iam_permissions()
    statements = code_statements()
    granted = [a for s in statements for a in s["actions"]]
    assert len(granted) == len(set(granted)), "an action is granted twice"
    assert set(granted) == {a for group in declared.values() for a in group}
    by_action = {a: s for s in statements for a in s["actions"]}
    for action in declared["tagged"]:
        conditions = by_action[action].get("condition", [])
        assert {
            "test": "StringEquals",
            "variable": f"aws:ResourceTag/{idle.OPT_IN_TAG}",
            "values": ["true"],
        } in conditions
        assert by_action[action]["resources"] != ["*"]
    tag_keys = [c for c in by_action["ec2:CreateTags"]["condition"] if c["variable"] == "aws:TagKeys"]
    assert tag_keys == [
        {
            "test": "ForAllValues:StringEquals",
            "variable": "aws:TagKeys",
            "values": [idle.ACTED_TAG, idle.WARNED_TAG],
        }
    ]
    assert by_action["sns:Publish"]["resources"] == ["${aws_sns_topic.summary.arn}"]
    assert by_action["ssm:GetParameter"]["resources"] == ["${statement.value}"]  # the one parameter's ARN
    # Mutating actions live only in tag-conditioned statements.
    for s in statements:
        if s["resources"] == ["*"]:
            assert all(a.split(":")[1].startswith(("Describe", "List", "Get")) for a in s["actions"])


def test_the_module_sets_every_setting_the_code_reads() -> None:
    environment = module_locals(MODULE)["environment"]
    keys = set(re.findall(r"WATCHDOG_[A-Z_]+", json.dumps(environment)))
    read_by_settings = {var for var, _ in idle.ENVIRONMENT.values()} - {
        "WATCHDOG_PERIOD_SECONDS",
        "WATCHDOG_MIN_COVERAGE",
    }
    read_by_handler = set(re.findall(r'"(WATCHDOG_[A-Z_]+)"', HANDLER.read_text()))
    assert read_by_settings | read_by_handler == keys


def test_nothing_is_sent_when_nothing_was_done_or_is_wrong(fleet: Fleet, recorder: CallRecorder) -> None:
    fleet.gpu_metrics(fleet.instance("busy"), [[50.0]])
    target = watchdog.Notify(sns_topic_arn=f"arn:aws:sns:{REGION}:123456789012:absent", region=REGION)
    out = watchdog.run_and_notify(
        [REGION], Settings(), target, log=lambda _: None, now=fleet.now, factory=recorder, all_envs=True
    )
    assert out["notified"] is False and not recorder.ops("Publish")


def test_a_failed_notification_is_reported_not_raised(fleet: Fleet) -> None:
    fleet.gpu_metrics(fleet.instance("idle-standalone"), [[1.0]])
    target = watchdog.Notify(
        sns_topic_arn=f"arn:aws:sns:{REGION}:123456789012:absent",
        slack_webhook_parameter="/absent",
        region=REGION,
    )
    lines: list[str] = []
    out = watchdog.run_and_notify(
        [REGION],
        Settings(),
        target,
        log=lines.append,
        now=fleet.now,
        factory=CallRecorder(),
        all_envs=True,
    )
    assert out["acted"] and [e.split(":")[0] for e in out["errors"]] == ["sns", "slack"]
    # Reported in the result, not only logged: the run did its work but is not ok.
    assert out["ok"] is False and out["notified"] is False and out["notify_errors"] == out["errors"]
    assert json.loads(lines[-1])["message"] == "gpu-watchdog error"
