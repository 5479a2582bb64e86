"""The watchdog against moto over HTTP: a fleet covering every case, with the exact action for each."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest
from fakes.slack_webhook import SlackHook

from pyctl.clouds.aws import watchdog
from pyctl.core import idle
from pyctl.core.idle import Settings

from .conftest import REGION, CallRecorder, Fleet

PRICES = {"p4d.24xlarge": 21.96, "g5.xlarge": 1.006, "g5.xlarge:spot": 0.402}
IDLE = [[0.0, 1.0, 2.0, 4.9]]  # one GPU that never reaches 5%
IDLE8 = IDLE * 8

# name -> (verdict, action) expected with the default settings.
EXPECTED = {
    "eight-gpu-one-busy": ("busy", "none"),
    "loading-no-metrics": ("no-data", "none"),
    "partial-7-of-8": ("no-data", "none"),
    "keep-alive-live": ("excluded", "none"),
    "keep-alive-expired": ("idle", "stop"),
    "asg-min-0": ("idle", "none"),
    "asg-above-0": ("idle", "scale-in"),
    "spot-one-time": ("idle", "none"),
    "spot-one-time-allowed": ("idle", "terminate"),
    "spot-persistent": ("idle", "stop"),
    "reserved": ("idle", "none"),
    "opted-out": ("excluded", "none"),
    "busy": ("busy", "none"),
    "idle-standalone": ("idle", "stop"),
    "cpu-only-tagged": ("excluded", "none"),
}
ACTED = {"keep-alive-expired", "asg-above-0", "spot-one-time-allowed", "spot-persistent", "idle-standalone"}


def build_fleet(fleet: Fleet) -> None:
    p4d = "p4d.24xlarge"
    # One busy GPU out of 8, busy 5 minutes of 30: its average over all GPUs is about 1%.
    busy_gpu = [[60.0] * 5 + [0.0] * 25]
    fleet.gpu_metrics(fleet.instance("eight-gpu-one-busy", p4d), IDLE * 3 + busy_gpu + IDLE * 4)
    fleet.instance("loading-no-metrics", p4d)
    fleet.gpu_metrics(fleet.instance("partial-7-of-8", p4d), IDLE * 7)
    live = (fleet.now + timedelta(hours=2)).isoformat()
    fleet.gpu_metrics(fleet.instance("keep-alive-live", tags={idle.KEEP_UNTIL_TAG: live}), IDLE)
    expired = (fleet.now - timedelta(hours=1)).isoformat()
    fleet.gpu_metrics(fleet.instance("keep-alive-expired", tags={idle.KEEP_UNTIL_TAG: expired}), IDLE)
    for instance_id in fleet.group("asg-min", min_size=1, desired=1) + fleet.group(
        "asg-above", min_size=0, desired=1
    ):
        fleet.gpu_metrics(instance_id, IDLE)
    fleet.gpu_metrics(fleet.spot("spot-one-time", "one-time"), IDLE)
    fleet.gpu_metrics(
        fleet.spot("spot-one-time-allowed", "one-time", {idle.SPOT_TERMINATE_TAG: "true"}), IDLE
    )
    fleet.gpu_metrics(fleet.spot("spot-persistent", "persistent"), IDLE)
    # moto has no capacity reservations: the pool module's tag stands for CapacityReservationId.
    fleet.gpu_metrics(fleet.instance("reserved", tags={idle.CAPACITY_TAG: "reserved"}), IDLE)
    fleet.gpu_metrics(fleet.instance("opted-out", tags={"AutoShutdown": "false"}), IDLE)
    fleet.gpu_metrics(fleet.instance("busy"), [[50.0]])
    fleet.gpu_metrics(fleet.instance("idle-standalone", p4d), IDLE8)
    fleet.instance("cpu-only-tagged", "m5.large")
    fleet.instance("untagged", tags={"AutoShutdown": ""})  # tag-key present, empty value
    fleet.ec2.delete_tags(Resources=[fleet.ids["untagged"]], Tags=[{"Key": "AutoShutdown"}])


def run(fleet: Fleet, settings: Settings, recorder: CallRecorder | None = None) -> watchdog.RunResult:
    factory = recorder or CallRecorder()
    return watchdog.run([REGION], settings, now=fleet.now, prices=PRICES, factory=factory, all_envs=True)


def by_name(fleet: Fleet, result: watchdog.RunResult) -> dict[str, idle.Decision]:
    names = {v: k for k, v in fleet.ids.items()}
    return {names[d.instance_id]: d for d in result.decisions}


def test_fleet_gets_the_exact_action_for_every_case(
    fleet: Fleet, recorder: CallRecorder, slack: SlackHook
) -> None:
    build_fleet(fleet)
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="gpu-watchdog-summary")["TopicArn"]
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/dev/slack", Value=slack.url, Type="SecureString"
    )
    target = watchdog.Notify(sns_topic_arn=topic, slack_webhook_parameter="/dev/slack", region=REGION)
    result = run(fleet, Settings(), recorder)
    lines: list[str] = []
    out = watchdog.publish_run(result, target, log=lines.append, factory=recorder)
    got = {name: (d.verdict, d.action) for name, d in by_name(fleet, result).items()}
    assert got == EXPECTED  # the untagged instance is not even a candidate
    decisions = by_name(fleet, result)
    assert {n for n, d in decisions.items() if d.outcome == "done"} == ACTED
    for name in ACTED - {"asg-above-0", "spot-one-time-allowed"}:
        assert fleet.state(name) in ("stopping", "stopped")
    assert fleet.state("spot-one-time-allowed") in ("shutting-down", "terminated")
    assert fleet.state("asg-above-0") in ("shutting-down", "terminated")
    assert fleet.desired("asg-above") == 0 and fleet.desired("asg-min") == 1
    for name in set(EXPECTED) - ACTED:
        assert fleet.state(name) == "running", name
    # Evidence: per-GPU maxima, and the reasons a user reads.
    busy = decisions["eight-gpu-one-busy"]
    assert [g.maximum for g in busy.gpus] == [4.9, 4.9, 4.9, 60.0, 4.9, 4.9, 4.9, 4.9]
    assert "GPU 3 max 60%" in busy.reason
    assert "7 of 8 GPUs" in decisions["partial-7-of-8"].reason
    assert "at min size" in decisions["asg-min-0"].reason
    assert decisions["cpu-only-tagged"].reason == "m5.large has no GPUs"
    assert decisions["reserved"].alert and "idle reserved capacity" in decisions["reserved"].reason
    assert "$1.01/h" in decisions["reserved"].reason
    assert decisions["idle-standalone"].hourly_cost_saved == 21.96
    assert all(g.coverage == 1.0 and g.datapoints == 30 for g in decisions["idle-standalone"].gpus)
    # Cheap: one ListMetrics scan and one GetMetricData request for the whole region, no per-instance loop.
    # (moto returns each series once per datapoint, so ListMetrics needs a few pages; still one scan)
    assert [("NextToken" in p) for p in recorder.ops("ListMetrics")][0] is False
    assert all("NextToken" in p for p in recorder.ops("ListMetrics")[1:])
    # Excluded instances (keep-alive, opted out) are not read: 8 + 7 + 8 GPUs, and 8 single-GPU nodes.
    assert [len(p["MetricDataQueries"]) for p in recorder.ops("GetMetricData")] == [8 + 7 + 8 + 8]
    assert not recorder.ops("GetMetricStatistics")
    # Each acted-on instance was marked before the action (idempotency within the window).
    marked = {p["Resources"][0] for p in recorder.ops("CreateTags")}
    assert marked == {fleet.ids[n] for n in ACTED}
    assert result.summary.notify and result.summary.hourly_saved == pytest.approx(
        21.96 + 2 * 1.006 + 2 * 0.402
    )
    assert decisions["spot-persistent"].hourly_cost == 0.402  # spot instances at the spot price
    # The run called exactly the IAM actions the code declares (and the module grants, see test_iam_and_module).
    assert recorder.iam_actions() == {a for group in watchdog.iam_permissions().values() for a in group}
    # One JSON log line per decision, with its evidence; a summary to SNS and Slack.
    logged = [json.loads(line) for line in lines]
    assert sorted(d["instance_id"] for d in logged) == sorted(fleet.ids[n] for n in EXPECTED)
    assert all(
        {"instance_id", "verdict", "action", "reason", "evidence", "hourly_cost_saved"} <= d.keys()
        for d in logged
    )
    assert (
        out["notified"]
        and sorted(out["acted"]) == sorted(fleet.ids[n] for n in ACTED)
        and out["errors"] == []
    )
    assert len(slack.received) == 1 and fleet.ids["idle-standalone"] in slack.received[0]["text"]
    assert (
        len(recorder.ops("Publish")) == 1
        and "idle reserved capacity" in recorder.ops("Publish")[0]["Message"]
    )


def test_dry_run_and_protected_env_change_nothing(fleet: Fleet, recorder: CallRecorder) -> None:
    build_fleet(fleet)
    dry = run(fleet, Settings(dry_run=True), recorder)
    assert {n for n, d in by_name(fleet, dry).items() if d.outcome == "dry-run"} == ACTED
    assert "(dry run)" in dry.summary.text()
    protected = run(fleet, Settings(protected_env=True), recorder)
    assert {d.verdict for d in protected.decisions} == {"excluded"}
    others = {fleet.ids[n] for n in ("opted-out", "keep-alive-live", "cpu-only-tagged")}
    assert all("protected env" in d.reason for d in protected.decisions if d.instance_id not in others)
    mutating = {"StopInstances", "TerminateInstances", "TerminateInstanceInAutoScalingGroup", "CreateTags"}
    assert not [op for _, op, _ in recorder.calls if op in mutating]
    assert all(fleet.state(n) == "running" for n in EXPECTED)
    opted_in = run(fleet, Settings(protected_env=True, act_in_protected_env=True))
    assert {fleet.ids[n] for n in ACTED} == {d.instance_id for d in opted_in.decisions if d.outcome == "done"}


def test_max_actions_acts_on_the_costliest_and_reports_the_rest(fleet: Fleet) -> None:
    for name, itype in (("p4d", "p4d.24xlarge"), ("g5-a", "g5.xlarge"), ("g5-b", "g5.xlarge")):
        fleet.gpu_metrics(fleet.instance(name, itype), IDLE8 if itype.startswith("p4d") else IDLE)
    decisions = by_name(fleet, run(fleet, Settings(max_actions_per_run=2)))
    done = sorted(n for n, d in decisions.items() if d.outcome == "done")
    assert len(done) == 2 and "p4d" in done  # the p4d ($21.96/h) goes first, then one g5 by instance id
    (capped,) = set(decisions) - set(done)
    assert decisions[capped].action == "none" and decisions[capped].alert
    assert "max actions per run (2) reached, would stop" in decisions[capped].reason
    assert fleet.state(capped) == "running"


def test_a_failed_api_call_is_reported_and_the_run_goes_on(fleet: Fleet) -> None:
    stuck = fleet.instance(
        "stop-protected", "p4d.24xlarge", DisableApiStop=True
    )  # the costliest: acted on first
    fleet.gpu_metrics(stuck, IDLE8)
    fleet.gpu_metrics(fleet.instance("idle-standalone"), IDLE)
    result = run(fleet, Settings())
    decisions = by_name(fleet, result)
    failed = decisions["stop-protected"]
    assert failed.outcome == "failed" and "OperationNotPermitted" in failed.error
    assert decisions["idle-standalone"].outcome == "done" and fleet.state("idle-standalone") in (
        "stopping",
        "stopped",
    )
    assert [d.instance_id for d in result.summary.failed] == [stuck]
    assert "FAILED" in result.summary.text() and "OperationNotPermitted" in result.summary.text()


def test_a_second_run_in_the_same_window_does_not_act_again(fleet: Fleet, recorder: CallRecorder) -> None:
    node = fleet.instance("idle-standalone")
    fleet.gpu_metrics(node, IDLE)
    first = run(fleet, Settings())
    assert [d.outcome for d in first.decisions] == ["done"]
    # Someone starts it again right away (or the stop is not visible yet): same window, no second stop.
    fleet.ec2.start_instances(InstanceIds=[node])
    second = run(fleet, Settings(), recorder)
    assert [(d.verdict, d.action) for d in second.decisions] == [("idle", "none")]
    assert "already acted" in second.decisions[0].reason
    assert not recorder.ops("StopInstances")
    # A window later the mark has expired and the watchdog acts again.
    fleet.now += timedelta(minutes=31)
    fleet.gpu_metrics(node, IDLE)
    third = run(fleet, Settings())
    assert [d.outcome for d in third.decisions] == ["done"]


def test_instances_younger_than_min_uptime_are_young(fleet: Fleet) -> None:
    fleet.now -= timedelta(minutes=45)  # the real launch time: every instance just started
    fleet.gpu_metrics(fleet.instance("fresh"), IDLE)
    result = run(fleet, Settings())
    assert [(d.verdict, d.action) for d in result.decisions] == [("young", "none")]
    assert "minimum uptime 20 min" in result.decisions[0].reason


def test_unreadable_metrics_never_lead_to_an_action(fleet: Fleet) -> None:
    """CloudWatch refuses the reads (AccessDenied): every instance is no-data with an alert, even with
    missing_data=idle, and the run still finishes."""
    fleet.gpu_metrics(fleet.instance("idle-standalone"), IDLE)
    recorder = CallRecorder()

    def factory(service: str, region: str):
        c = recorder(service, region)
        if service == "cloudwatch":
            c.meta.events.register("before-call.cloudwatch.*", _access_denied)
        return c

    settings = Settings(missing_data="idle", missing_data_grace_minutes=0)
    result = watchdog.run([REGION], settings, now=fleet.now, factory=factory, all_envs=True)
    assert [(d.verdict, d.action, d.alert) for d in result.decisions] == [("no-data", "none", True)]
    assert result.errors and "metrics could not be read" in result.errors[0]
    assert "AccessDenied" in result.summary.text()
    assert fleet.state("idle-standalone") == "running"


def _access_denied(model, **_):
    from botocore.exceptions import ClientError

    error = {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}
    raise ClientError(error, model.name)


def test_a_gpu_reported_under_two_dimension_sets_counts_once(fleet: Fleet) -> None:
    """The agent's dimensions changed mid-window (`name` dropped): the halves join into one covered series."""
    node = fleet.instance("idle-standalone")
    fleet.gpu_metrics(node, [[1.0]], minutes=16)
    older = [
        {
            "MetricName": "nvidia_smi_utilization_gpu",
            "Dimensions": [{"Name": "InstanceId", "Value": node}, {"Name": "index", "Value": "0"}],
            "Timestamp": fleet.now - timedelta(minutes=m),
            "Value": 2.0,
        }
        for m in range(17, 31)
    ]
    fleet.cloudwatch.put_metric_data(Namespace="CWAgent", MetricData=older)
    (decision,) = run(fleet, Settings(dry_run=True)).decisions
    assert (decision.verdict, [(g.index, g.datapoints, g.maximum) for g in decision.gpus]) == (
        "idle",
        [("0", 30, 2.0)],
    )


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_):
        yield self.body


def test_a_transient_error_is_retried_by_the_client_and_the_action_succeeds(fleet: Fleet) -> None:
    """EC2 answers the first StopInstances with 503 RequestLimitExceeded: the factory's standard retry mode
    (backoff with jitter) sends it again and the stop goes through."""
    from botocore.awsrequest import AWSResponse

    fleet.gpu_metrics(fleet.instance("idle-standalone"), IDLE)
    sent: list[str] = []
    recorder = CallRecorder()

    def throttle_once(request, **_):
        sent.append("StopInstances")
        if len(sent) == 1:
            body = b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>slow down</Message></Error></Errors></Response>"
            return AWSResponse(request.url, 503, {}, _Raw(body))
        return None

    def factory(service: str, region: str):
        c = recorder(service, region)
        if service == "ec2":
            c.meta.events.register("before-send.ec2.StopInstances", throttle_once)
        return c

    (decision,) = watchdog.run([REGION], Settings(), now=fleet.now, factory=factory, all_envs=True).decisions
    assert (decision.action, decision.outcome) == ("stop", "done")
    assert sent == ["StopInstances", "StopInstances"] and fleet.state("idle-standalone") in (
        "stopping",
        "stopped",
    )
