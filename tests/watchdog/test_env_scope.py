"""Env scoping on AWS: two envs in one moto account. Each env's run lists, tags, stops and scales in only its
own instances (the EC2/Auto Scaling state and the calls made), each env's IAM policy allows exactly its own
env's mutations and denies the other's, and an unscoped run is refused before any call."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pyctl.clouds.aws import watchdog
from pyctl.core import idle
from pyctl.core.idle import Settings
from pyctl.core.watchdog import UnscopedRun

from .conftest import REGION, CallRecorder, Fleet
from .tfviews import module_locals, policy_document

MODULE = Path(__file__).resolve().parents[2] / "infra" / "modules" / "aws-gpu-watchdog"
ENVS = ("dev", "prod")
MUTATING = ("StopInstances", "TerminateInstances", "CreateTags", "TerminateInstanceInAutoScalingGroup")


def two_envs(fleet: Fleet) -> dict[str, dict[str, Any]]:
    """Per env: an idle standalone instance, a busy one and an idle Auto Scaling group of two (min 0), all
    tagged as aws-gpu-pool tags them (`Env` and `pyctl:env`)."""
    made: dict[str, dict[str, Any]] = {}
    for env in ENVS:
        tags = {"Env": env, idle.ENV_SCOPE_TAG: env}
        standalone = fleet.instance(f"{env}-idle", tags=tags)
        busy = fleet.instance(f"{env}-busy", tags=tags)
        members = fleet.group(f"{env}-pool", min_size=0, desired=2, tags=tags)
        fleet.gpu_metrics(standalone, [[1.0]])
        fleet.gpu_metrics(busy, [[70.0]])
        for member in members:
            fleet.gpu_metrics(member, [[0.5]])
        made[env] = {"standalone": standalone, "busy": busy, "members": members}
    # Only the generic `Env` tag, not pyctl's: the watchdog is scoped by pyctl:env and leaves it alone.
    made["untagged"] = {"standalone": fleet.instance("env-tag-only", tags={"Env": "dev"})}
    fleet.gpu_metrics(made["untagged"]["standalone"], [[1.0]])
    return made


def mutated_ids(recorder: CallRecorder) -> set[str]:
    ids: set[str] = set()
    for op in MUTATING:
        for params in recorder.ops(op):
            ids.update(params.get("InstanceIds", []))
            ids.update(params.get("Resources", []))
            if "InstanceId" in params:
                ids.add(params["InstanceId"])
    return ids


def test_each_envs_run_touches_only_its_own_instances(fleet: Fleet) -> None:
    made = two_envs(fleet)
    settings = Settings(max_actions_per_run=10)
    for env in ENVS:
        recorder = CallRecorder()
        result = watchdog.run([REGION], replace(settings, env=env), now=fleet.now, factory=recorder)
        own = {made[env]["standalone"], made[env]["busy"], *made[env]["members"]}
        # Listed: the env's instances only, by a server-side filter.
        assert {d.instance_id for d in result.decisions} == own
        filters = [f for params in recorder.ops("DescribeInstances") for f in params.get("Filters", [])]
        assert {"Name": "tag:pyctl:env", "Values": [env]} in filters
        # Read: GetMetricData queried only the env's instances.
        queried = {
            d["Value"]
            for params in recorder.ops("GetMetricData")
            for q in params["MetricDataQueries"]
            for d in q["MetricStat"]["Metric"]["Dimensions"]
            if d["Name"] == "InstanceId"
        }
        assert queried <= own
        # Acted: the env's idle instances only (stop, and scale-in of both group members).
        assert mutated_ids(recorder) == {made[env]["standalone"], *made[env]["members"]}
        assert not result.errors and not result.summary.failed
    for env in ENVS:
        assert fleet.state(f"{env}-idle") in ("stopping", "stopped")
        assert fleet.state(f"{env}-busy") == "running"
        assert fleet.desired(f"{env}-pool") == 0
    assert fleet.state("env-tag-only") == "running"


def test_one_envs_run_leaves_the_other_env_untouched(fleet: Fleet) -> None:
    made = two_envs(fleet)
    recorder = CallRecorder()
    watchdog.run([REGION], Settings(env="dev"), now=fleet.now, factory=recorder)
    prod = {made["prod"]["standalone"], made["prod"]["busy"], *made["prod"]["members"]}
    assert not mutated_ids(recorder) & prod
    assert fleet.state("prod-idle") == "running" and fleet.desired("prod-pool") == 2
    tags = fleet.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": sorted(prod)}])["Tags"]
    assert not [t for t in tags if t["Key"].startswith("pyctl:watchdog")]


def test_an_unscoped_run_is_refused_before_any_call(fleet: Fleet) -> None:
    two_envs(fleet)
    recorder = CallRecorder()
    with pytest.raises(UnscopedRun, match="needs an env"):
        watchdog.run([REGION], Settings(), now=fleet.now, factory=recorder)
    with pytest.raises(UnscopedRun, match="exclude each other"):
        watchdog.run([REGION], Settings(env="dev"), now=fleet.now, factory=recorder, all_envs=True)
    assert recorder.calls == []
    assert fleet.state("dev-idle") == fleet.state("prod-idle") == "running"


def test_the_function_refuses_to_start_without_its_env() -> None:
    from pyctl.functions.gpu_watchdog_aws import WatchdogEnvironment

    with pytest.raises(ValueError, match="WATCHDOG_ENV"):
        WatchdogEnvironment.from_environ({"WATCHDOG_REGIONS": REGION})
    with pytest.raises(ValueError, match="env must be an env name"):
        WatchdogEnvironment.from_environ({"WATCHDOG_REGIONS": REGION, "WATCHDOG_ENV": "Prod!"})
    assert WatchdogEnvironment.from_environ(
        {"WATCHDOG_REGIONS": REGION, "WATCHDOG_ENV": "prod"}
    ).settings.env == ("prod")


# --- the IAM policy, with the module's var.env --------------------------------------------------------------


def policy_for(env: str) -> list[dict[str, Any]]:
    """data.aws_iam_policy_document.code's statements with the locals and `var.env` resolved."""
    local = module_locals(MODULE)
    body = policy_document(MODULE, "code")
    statements = list(body.get("statement", []))
    for dyn in body.get("dynamic", []):
        statements.extend(dyn["statement"]["content"])
    text = re.sub(r"\$\{local\.(\w+)\}", lambda m: str(local[m.group(1)]), json.dumps(statements))
    text = text.replace('"${var.env}"', json.dumps(env))
    return list(json.loads(text))


def resource_tag_key(variable: str) -> str | None:
    """The tag a `<service>:ResourceTag/<key>` or `aws:ResourceTag/<key>` condition key reads: both name the
    tags of the resource the action is on (IAM User Guide, "aws:ResourceTag/tag-key"; Service Authorization
    Reference for EC2 Auto Scaling, `autoscaling:ResourceTag/${TagKey}`)."""
    match = re.fullmatch(r"(?:aws|autoscaling|ec2):ResourceTag/(.+)", variable)
    return match.group(1) if match else None


def allows(
    statements: list[dict[str, Any]], action: str, tags: dict[str, str], request_keys: list[str]
) -> bool:
    """Whether an Allow statement grants `action` on a resource with `tags`: every condition must hold
    (IAM evaluates the conditions of a statement with AND). Handles the operators this policy uses."""
    for s in statements:
        if action not in s["actions"] or s.get("effect", "Allow") != "Allow":
            continue
        ok = True
        for c in s.get("condition", []):
            key = resource_tag_key(c["variable"])
            if c["test"] == "StringEquals" and key is not None:
                ok = ok and tags.get(key) in c["values"]
            elif c["test"] == "ForAllValues:StringEquals" and c["variable"] == "aws:TagKeys":
                ok = ok and all(k in c["values"] for k in request_keys)
            else:
                raise AssertionError(f"the evaluator does not know condition {c}")
        if ok:
            return True
    return False


def tags_now(fleet: Fleet) -> dict[str, dict[str, str]]:
    """Every instance's tags, read before the run (a terminated instance's tags are gone after it)."""
    found = fleet.ec2.describe_instances()["Reservations"]
    return {
        i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        for r in found
        for i in r["Instances"]
    }


def calls_with_resource_tags(
    fleet: Fleet, recorder: CallRecorder, before: dict[str, dict[str, str]]
) -> list[tuple[str, dict[str, str], list[str]]]:
    """(IAM action, tags of the resource it is authorized on, tag keys in the request) per mutating call:
    the instance for EC2, the Auto Scaling group for TerminateInstanceInAutoScalingGroup."""
    out = []
    for prefix, op, params in recorder.calls:
        if op not in MUTATING:
            continue
        if op == "TerminateInstanceInAutoScalingGroup":
            group = before[params["InstanceId"]]["aws:autoscaling:groupName"]
            described = fleet.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])
            tags = {t["Key"]: t["Value"] for t in described["AutoScalingGroups"][0]["Tags"]}
            out.append((f"{prefix}:{op}", tags, []))
            continue
        keys = [t["Key"] for t in params.get("Tags", [])]
        for instance_id in params.get("InstanceIds", params.get("Resources", [])):
            out.append((f"{prefix}:{op}", before[instance_id], keys))
    return out


def test_each_envs_policy_allows_its_own_mutations_and_denies_the_other_envs(fleet: Fleet) -> None:
    two_envs(fleet)
    recorder = CallRecorder()
    # What the code does, before it does it: a dry run would make no mutating call, so the dev pass acts.
    before = tags_now(fleet)
    watchdog.run([REGION], Settings(env="dev"), now=fleet.now, factory=recorder)
    calls = calls_with_resource_tags(fleet, recorder, before)
    assert {a for a, _, _ in calls} == {
        "ec2:CreateTags",
        "ec2:StopInstances",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    }
    for action, tags, keys in calls:
        assert allows(policy_for("dev"), action, tags, keys), (action, tags)
        assert not allows(policy_for("prod"), action, tags, keys), (action, tags)
        # The same resource with prod's tag, under prod's policy: allowed; the opt-in tag still required.
        prod_tags = {**tags, idle.ENV_SCOPE_TAG: "prod"}
        assert allows(policy_for("prod"), action, prod_tags, keys)
        assert not allows(policy_for("prod"), action, {**prod_tags, idle.OPT_IN_TAG: "false"}, keys)
        assert not allows(
            policy_for("dev"), action, {k: v for k, v in tags.items() if k != "pyctl:env"}, keys
        )


def test_the_policys_mutating_statements_carry_exactly_the_env_and_opt_in_conditions() -> None:
    by_sid = {s["sid"]: s for s in policy_for("staging")}
    ec2_conditions = [
        {"test": "StringEquals", "variable": "aws:ResourceTag/AutoShutdown", "values": ["true"]},
        {"test": "StringEquals", "variable": "aws:ResourceTag/pyctl:env", "values": ["staging"]},
    ]
    assert by_sid["StopOrTerminateOptedInInstancesOfEnv"]["actions"] == [
        "ec2:StopInstances",
        "ec2:TerminateInstances",
    ]
    assert by_sid["StopOrTerminateOptedInInstancesOfEnv"]["condition"] == ec2_conditions
    assert by_sid["MarkActedOnOptedInInstancesOfEnv"]["condition"] == [
        *ec2_conditions,
        {
            "test": "ForAllValues:StringEquals",
            "variable": "aws:TagKeys",
            "values": [idle.ACTED_TAG, idle.WARNED_TAG],
        },
    ]
    assert by_sid["ScaleInOptedInGroupsOfEnv"]["actions"] == [
        "autoscaling:TerminateInstanceInAutoScalingGroup"
    ]
    assert by_sid["ScaleInOptedInGroupsOfEnv"]["condition"] == [
        {"test": "StringEquals", "variable": "aws:ResourceTag/AutoShutdown", "values": ["true"]},
        {"test": "StringEquals", "variable": "autoscaling:ResourceTag/AutoShutdown", "values": ["true"]},
        {"test": "StringEquals", "variable": "aws:ResourceTag/pyctl:env", "values": ["staging"]},
        {"test": "StringEquals", "variable": "autoscaling:ResourceTag/pyctl:env", "values": ["staging"]},
    ]
    # Every statement with a mutating action (any Auto Scaling or EC2 action that is not Describe*) is one of
    # these three: nothing mutating escapes the env condition.
    declared = watchdog.iam_permissions()["tagged"]
    for s in by_sid.values():
        mutating = [a for a in s["actions"] if a in declared]
        if mutating:
            assert s["sid"].endswith("OfEnv"), s["sid"]
    # The tag the policy conditions on is the one the code filters by and the pool module writes.
    assert module_locals(MODULE)["env_tag"] == idle.ENV_SCOPE_TAG
    environment = json.dumps(module_locals(MODULE)["environment"])
    assert re.search(r"WATCHDOG_ENV = var\.env\b", environment)
