"""The module's IAM policy grants exactly what the code calls; its settings are the ones the code reads."""

from __future__ import annotations

import http.server
import json
import re
import threading
from pathlib import Path
from typing import Any

import boto3
import hcl2
import pytest
from hcl2 import SerializationOptions

from pyctl.clouds.aws import watchdog
from pyctl.core import idle
from pyctl.core.idle import Settings

from .conftest import REGION, CallRecorder, Fleet
from .test_aws_fleet import ACTED, EXPECTED, PRICES, build_fleet

MODULE = Path(__file__).resolve().parents[2] / "infra" / "modules" / "aws-gpu-watchdog"
HANDLER = Path(__file__).resolve().parents[2] / "lambdas" / "gpu_watchdog" / "handler.py"


def parse_module() -> dict[str, Any]:
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    return hcl2.loads((MODULE / "main.tf").read_text(), serialization_options=options)


def module_locals(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for block in doc["locals"] for k, v in block.items()}


def resolve(text: str, local: dict[str, Any]) -> str:
    """Replace `${local.name}` where the local is a plain string."""
    return re.sub(r"\$\{local\.(\w+)\}", lambda m: str(local[m.group(1)]), text)


def code_statements() -> list[dict[str, Any]]:
    """Statements of data.aws_iam_policy_document.code, static and `dynamic` alike, locals resolved."""
    doc = parse_module()
    local = module_locals(doc)
    body = next(
        d["aws_iam_policy_document"]["code"]
        for d in doc["data"]
        if "code" in d.get("aws_iam_policy_document", {})
    )
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
        {"test": "ForAllValues:StringEquals", "variable": "aws:TagKeys", "values": [idle.ACTED_TAG]}
    ]
    assert by_action["sns:Publish"]["resources"] == ["${aws_sns_topic.summary.arn}"]
    assert by_action["ssm:GetParameter"]["resources"] == ["${statement.value}"]  # the one parameter's ARN
    # Mutating actions live only in tag-conditioned statements.
    for s in statements:
        if s["resources"] == ["*"]:
            assert all(a.split(":")[1].startswith(("Describe", "List", "Get")) for a in s["actions"])


def test_the_module_sets_every_setting_the_code_reads() -> None:
    environment = module_locals(parse_module())["environment"]
    keys = set(re.findall(r"WATCHDOG_[A-Z_]+", json.dumps(environment)))
    read_by_settings = {var for var, _ in idle.ENVIRONMENT.values()} - {
        "WATCHDOG_PERIOD_SECONDS",
        "WATCHDOG_MIN_COVERAGE",
    }
    read_by_handler = set(re.findall(r'"(WATCHDOG_[A-Z_]+)"', HANDLER.read_text()))
    assert read_by_settings | read_by_handler == keys


class _SlackHook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _SlackHook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slack_url():
    _SlackHook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlackHook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/services/T000/B000/XXXX"
    server.shutdown()


def test_a_full_run_calls_exactly_the_granted_actions_and_notifies(
    fleet: Fleet, recorder: CallRecorder, slack_url: str
) -> None:
    build_fleet(fleet)
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="gpu-watchdog-summary")["TopicArn"]
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/dev/gpu-watchdog/slack", Value=slack_url, Type="SecureString"
    )
    target = watchdog.Notify(
        sns_topic_arn=topic, slack_webhook_parameter="/dev/gpu-watchdog/slack", region=REGION
    )
    lines: list[str] = []
    out = watchdog.run_and_notify(
        [REGION], Settings(), target, prices=PRICES, log=lines.append, now=fleet.now, factory=recorder
    )
    declared = {a for group in watchdog.iam_permissions().values() for a in group}
    assert recorder.iam_actions() == declared
    # One JSON log line per instance decision, with its evidence.
    decisions = [json.loads(line) for line in lines]
    assert sorted(d["instance_id"] for d in decisions) == sorted(fleet.ids[n] for n in EXPECTED)
    assert all(
        {"instance_id", "verdict", "action", "reason", "evidence", "hourly_cost_saved"} <= d.keys()
        for d in decisions
    )
    assert {d["instance_id"] for d in decisions if d["outcome"] == "done"} == {fleet.ids[n] for n in ACTED}
    assert (
        out["notified"]
        and sorted(out["acted"]) == sorted(fleet.ids[n] for n in ACTED)
        and out["errors"] == []
    )
    assert len(_SlackHook.received) == 1 and "acted: " in _SlackHook.received[0]["text"]
    assert fleet.ids["idle-standalone"] in _SlackHook.received[0]["text"]
    assert (
        len(recorder.ops("Publish")) == 1
        and "idle reserved capacity" in recorder.ops("Publish")[0]["Message"]
    )


def test_nothing_is_sent_when_nothing_was_done_or_is_wrong(fleet: Fleet, recorder: CallRecorder) -> None:
    fleet.gpu_metrics(fleet.instance("busy"), [[50.0]])
    target = watchdog.Notify(sns_topic_arn=f"arn:aws:sns:{REGION}:123456789012:absent", region=REGION)
    out = watchdog.run_and_notify(
        [REGION], Settings(), target, log=lambda _: None, now=fleet.now, factory=recorder
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
        [REGION], Settings(), target, log=lines.append, now=fleet.now, factory=CallRecorder()
    )
    assert out["acted"] and [e.split(":")[0] for e in out["errors"]] == ["sns", "slack"]
    assert json.loads(lines[-1])["message"] == "gpu-watchdog error"
