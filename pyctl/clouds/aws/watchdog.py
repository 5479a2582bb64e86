"""The idle-GPU watchdog's AWS I/O: find candidates, read GPU metrics in batches, act, notify.

Verdicts and action choice are pure (`pyctl.core.idle`); this module only talks to AWS. Each call site
declares the IAM actions it needs next to its code; `iam_permissions()` collects them and a test compares
them with the policy in `infra/modules/aws-gpu-watchdog`.

Transient errors (throttling, 5xx, connection resets) are retried with backoff and jitter by botocore's
"standard" retry mode, configured in the one client factory (`pyctl.clouds.aws.client`).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pyctl.clouds.aws import client as make_client
from pyctl.core import idle
from pyctl.core.idle import Decision, GpuReading, Instance, Settings, Window
from pyctl.core.watchdog import Candidates, RunResult, Utilization, one_line, run_pass

ClientFactory = Callable[[str, str], Any]

# --- reading -------------------------------------------------------------------------------------------------

DESCRIBE_PERMISSIONS = (
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeSpotInstanceRequests",
    "autoscaling:DescribeAutoScalingGroups",
)


def describe_running(ec2: Any, opt_in_only: bool, env: str = "") -> list[dict[str, Any]]:
    """Running instances (with the opt-in tag key when `opt_in_only`; of `env` only when given), all pages.

    The env is a server-side filter, `tag:<key>` = value (DescribeInstances, "Filters": "tag:<key> - The
    key/value combination of a tag assigned to the resource",
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html), and checked again
    on what comes back: another env's instance is never a candidate.
    """
    filters = [{"Name": "instance-state-name", "Values": ["running"]}]
    if opt_in_only:
        # The tag key, not its value: instances tagged AutoShutdown=false show up as `excluded`.
        filters.append({"Name": "tag-key", "Values": [idle.OPT_IN_TAG]})
    if env:
        filters.append({"Name": f"tag:{idle.ENV_SCOPE_TAG}", "Values": [env]})
    found: list[dict[str, Any]] = []
    # MaxResults 1000 (the API's maximum, allowed with filters, not with InstanceIds) as AWS recommends.
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=filters, PaginationConfig={"PageSize": DESCRIBE_PAGE_SIZE}
    )
    for page in pages:
        for reservation in page["Reservations"]:
            found.extend(_slim(i) for i in reservation["Instances"])
    if env:
        found = [i for i in found if _tag(i, idle.ENV_SCOPE_TAG) == env]
    return found


DESCRIBE_PAGE_SIZE = 1000
# What the watchdog reads of an instance; the rest of each DescribeInstances item (block devices, network
# interfaces...) is dropped as each page arrives, so memory follows the fleet's size, not the API's verbosity.
_INSTANCE_KEYS = (
    "InstanceId",
    "InstanceType",
    "LaunchTime",
    "Tags",
    "InstanceLifecycle",
    "CapacityReservationId",
    "SpotInstanceRequestId",
)


def _slim(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: raw[k] for k in _INSTANCE_KEYS if k in raw}


def _tag(raw: Mapping[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in raw.get("Tags", []) if t["Key"] == key), None)


def gpu_counts(ec2: Any, instance_types: Iterable[str]) -> dict[str, int]:
    """GPUs per instance type (0 for types without GPUs; types the API does not know are left out)."""
    from botocore.exceptions import ClientError

    counts: dict[str, int] = {}

    def read(types: Sequence[str]) -> None:
        for page in ec2.get_paginator("describe_instance_types").paginate(InstanceTypes=list(types)):
            for t in page["InstanceTypes"]:
                gpus = t.get("GpuInfo", {}).get("Gpus", [])
                counts[t["InstanceType"]] = sum(int(g.get("Count", 0)) for g in gpus)

    for chunk in idle.batches(sorted(set(instance_types)), 100):
        try:
            read(chunk)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidInstanceType":
                raise
            for one in chunk:  # one unknown type fails the whole call: ask for the others one by one
                try:
                    read([one])
                except ClientError as err:
                    if err.response.get("Error", {}).get("Code") != "InvalidInstanceType":
                        raise
    return counts


def spot_request_types(ec2: Any, raw: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """instance id -> spot request type ("one-time" | "persistent") for spot instances.

    AWS reports `SpotInstanceRequestId` on the instance; moto omits it, and the `instance-id` filter finds
    the request on both.
    """
    ids = [i["InstanceId"] for i in raw if i.get("InstanceLifecycle") == "spot"]
    types: dict[str, str] = {}
    for chunk in idle.batches(ids, 100):
        pages = ec2.get_paginator("describe_spot_instance_requests").paginate(
            Filters=[{"Name": "instance-id", "Values": list(chunk)}]
        )
        for page in pages:
            for request in page["SpotInstanceRequests"]:
                if request.get("InstanceId"):
                    types[request["InstanceId"]] = request["Type"]
    return types


def auto_scaling_groups(autoscaling: Any, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for chunk in idle.batches(sorted(set(names)), 50):
        pages = autoscaling.get_paginator("describe_auto_scaling_groups").paginate(
            AutoScalingGroupNames=list(chunk)
        )
        for page in pages:
            for group in page["AutoScalingGroups"]:
                groups[group["AutoScalingGroupName"]] = group
    return groups


# Spot request type -> (how messages name it, what stopping it means).
_SPOT_REQUEST_KINDS: dict[str, tuple[str, idle.StopKind]] = {
    "persistent": ("persistent spot", "stop"),
    "one-time": ("one-time spot", "terminate-only"),
}


def to_instance(
    raw: Mapping[str, Any],
    region: str,
    *,
    spot_types: Mapping[str, str],
    groups: Mapping[str, Mapping[str, Any]],
    gpus: Mapping[str, int],
    prices: Mapping[str, float],
) -> Instance:
    tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
    instance_id = raw["InstanceId"]
    group = None
    found = groups.get(tags.get("aws:autoscaling:groupName", ""))
    if found is not None:
        member: Mapping[str, Any] = next(
            (m for m in found.get("Instances", []) if m["InstanceId"] == instance_id), {}
        )
        group = idle.Group(
            name=found["AutoScalingGroupName"],
            min_size=int(found["MinSize"]),
            desired_capacity=int(found["DesiredCapacity"]),
            member_state=member.get("LifecycleState", "InService"),
            kind="Auto Scaling group",
            key=f"{region}/{found['AutoScalingGroupName']}",  # names repeat across regions
        )
    instance_type = raw.get("InstanceType", "")
    spot = raw.get("InstanceLifecycle") == "spot"
    market: str = "on-demand"
    stop_kind: idle.StopKind = "stop"
    if spot:
        # A persistent request's instance can be stopped; a one-time request's only terminated.
        market, stop_kind = _SPOT_REQUEST_KINDS.get(
            spot_types.get(instance_id, ""), ("spot instance whose request was not found", "unknown")
        )
    return Instance(
        instance_id=instance_id,
        launch_time=raw["LaunchTime"],
        tags=tags,
        region=region,
        instance_type=instance_type,
        market=market,
        stop_kind=stop_kind,
        group=group,
        reservation=raw.get("CapacityReservationId"),
        hourly_cost=prices.get(f"{instance_type}:spot" if spot else instance_type),
        expected_gpus=gpus.get(instance_type),
    )


def describe_instances(
    clients: RegionClients, opt_in_only: bool, prices: Mapping[str, float], env: str = ""
) -> tuple[list[Instance], dict[str, int]]:
    """The region's running instances (of `env`, when given) as `Instance` facts, and each group's scale-in
    room (desired - min), by the group's budget key (`region/name`)."""
    raw = describe_running(clients.ec2, opt_in_only, env)
    if not raw:
        return [], {}
    spot_types = spot_request_types(clients.ec2, raw)
    group_names = [
        t["Value"] for i in raw for t in i.get("Tags", []) if t["Key"] == "aws:autoscaling:groupName"
    ]
    groups = auto_scaling_groups(clients.autoscaling, group_names) if group_names else {}
    gpus = gpu_counts(clients.ec2, (i["InstanceType"] for i in raw))
    instances = [
        to_instance(i, clients.region, spot_types=spot_types, groups=groups, gpus=gpus, prices=prices)
        for i in raw
    ]
    room = {
        f"{clients.region}/{name}": int(g["DesiredCapacity"]) - int(g["MinSize"])
        for name, g in groups.items()
    }
    return instances, room


METRIC_PERMISSIONS = ("cloudwatch:ListMetrics", "cloudwatch:GetMetricData")

# At most this many instances: one ListMetrics call each (Dimensions InstanceId=<id>); more: one scan of the
# metric in the region (500 series a page), cheaper from about ceil(series in the region / 500) instances on.
# Measured in benchmarks/watchdog_scale.py (discovery section of benchmarks/RESULTS.md).
PER_INSTANCE_DISCOVERY_MAX = 10

Dimensions = tuple[tuple[str, str], ...]  # one series' dimension set, as (name, value) pairs in API order


def discover_series(
    cloudwatch: Any, settings: Settings, instance_ids: Iterable[str]
) -> dict[str, list[Dimensions]]:
    """instance id -> the dimension sets of its GPU series that ListMetrics knows (recently active: 3 h).

    Few instances: ListMetrics per instance (a dimension filter); many: one scan of the metric in the
    region, keeping only the series of `instance_ids` (other instances' series are not kept).
    """
    wanted = set(instance_ids)
    found: dict[str, dict[Dimensions, Dimensions]] = {}
    base: dict[str, Any] = {
        "Namespace": settings.metric_namespace,
        "MetricName": settings.metric_name,
        "RecentlyActive": "PT3H",
    }
    if len(wanted) <= PER_INSTANCE_DISCOVERY_MAX:
        requests: list[dict[str, Any]] = [
            {**base, "Dimensions": [{"Name": "InstanceId", "Value": iid}]} for iid in sorted(wanted)
        ]
    else:
        requests = [base]
    paginator = cloudwatch.get_paginator("list_metrics")
    for request in requests:
        for page in paginator.paginate(**request):
            for metric in page["Metrics"]:
                dims = tuple((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
                names = dict(dims)
                instance_id = names.get("InstanceId")
                if instance_id in wanted and "index" in names:
                    found.setdefault(instance_id, {}).setdefault(tuple(sorted(dims)), dims)
    return {iid: list(series.values()) for iid, series in found.items()}


@dataclass
class MetricRequests:
    """What reading cost: GetMetricData requests and the number of queries in each; what failed."""

    queries_per_request: list[int]
    errors: list[str] = field(default_factory=list)


def read_gpu_series(
    cloudwatch: Any, settings: Settings, window: Window, instance_ids: Sequence[str]
) -> tuple[dict[str, list[GpuReading] | None], MetricRequests]:
    """instance id -> its GPU readings in the window (None when a request for it failed).

    Discovery (`discover_series`), then GetMetricData with at most 500 queries and 100,800 datapoints per
    request: never one call per instance. Each page is reduced as it arrives (`GpuReading`: maximum and
    covered periods); a failed request marks only its own instances unreadable and the others go on.
    """
    dimensions = discover_series(cloudwatch, settings, instance_ids)
    queries: list[tuple[str, str, Dimensions]] = []  # (instance id, GPU index, dimensions)
    for instance_id in instance_ids:
        for dims in dimensions.get(instance_id, []):
            queries.append((instance_id, dict(dims)["index"], dims))
    result: dict[str, list[GpuReading] | None] = {iid: [] for iid in instance_ids}
    cost = MetricRequests([])
    for number, batch in enumerate(idle.batches(queries, idle.queries_per_request(window.periods))):
        try:
            readings = _read_batch(cloudwatch, settings, window, batch, cost)
        except Exception as exc:  # noqa: BLE001 - any failure (incl. unparseable answers): these are unread
            for instance_id, _, _ in batch:
                result[instance_id] = None
            cost.errors.append(
                f"GetMetricData request {number + 1} failed ({len(batch)} series): {describe_error(exc)}"
            )
            continue
        for (instance_id, index, _), reading in zip(batch, readings, strict=True):
            series = result[instance_id]
            if reading is None:
                result[instance_id] = None
            elif series is not None:
                same = next((s for s in series if s.index == index), None)
                if same is None:
                    series.append(reading)
                else:  # one GPU under two dimension sets (agent config changed): one reading
                    same.merge(reading)
    return result, cost


def _read_batch(
    cloudwatch: Any,
    settings: Settings,
    window: Window,
    batch: Sequence[tuple[str, str, Dimensions]],
    cost: MetricRequests,
) -> list[GpuReading | None]:
    """One GetMetricData request (all its pages): a reading per query, None where the query failed."""
    request = [
        {
            "Id": f"q{n}",
            "MetricStat": {
                "Metric": {
                    "Namespace": settings.metric_namespace,
                    "MetricName": settings.metric_name,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
                },
                "Period": window.period_seconds,
                "Stat": "Maximum",
            },
            "ReturnData": True,
        }
        for n, (_, _, dims) in enumerate(batch)
    ]
    readings: list[GpuReading | None] = [GpuReading(index, window) for _, index, _ in batch]
    token = None
    while True:
        kwargs: dict[str, Any] = {
            "MetricDataQueries": request,
            "StartTime": window.start,
            "EndTime": window.end,
            "ScanBy": "TimestampAscending",
        }
        if token:
            kwargs["NextToken"] = token
        cost.queries_per_request.append(len(request))
        page = cloudwatch.get_metric_data(**kwargs)
        for res in page["MetricDataResults"]:
            n = int(res["Id"][1:])
            reading = readings[n]
            if res.get("StatusCode") in ("InternalError", "Forbidden"):
                readings[n] = None
            elif reading is not None:
                for when, value in zip(res.get("Timestamps", []), res.get("Values", []), strict=False):
                    reading.add(when, float(value))
        token = page.get("NextToken")
        del page  # the page's datapoints are not kept while the next one is read
        if not token:
            break
    return readings


# --- acting --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionClients:
    region: str
    ec2: Any
    autoscaling: Any
    cloudwatch: Any

    @classmethod
    def build(cls, region: str, factory: ClientFactory) -> RegionClients:
        return cls(
            region, factory("ec2", region), factory("autoscaling", region), factory("cloudwatch", region)
        )


@dataclass(frozen=True)
class InstanceAction:
    """One verb the watchdog performs on an instance, with the IAM actions it needs.

    Every such IAM action is granted only on resources tagged AutoShutdown=true and pyctl:env=<the module's
    env> (see the module's policy).
    """

    name: str
    permissions: tuple[str, ...]
    call: Callable[[RegionClients, Decision], None]


def _stop(clients: RegionClients, d: Decision) -> None:
    clients.ec2.stop_instances(InstanceIds=[d.instance_id])


def _terminate(clients: RegionClients, d: Decision) -> None:
    clients.ec2.terminate_instances(InstanceIds=[d.instance_id])


def _scale_in(clients: RegionClients, d: Decision) -> None:
    # Decrementing desired capacity keeps the group from launching a replacement; AWS refuses below min size.
    clients.autoscaling.terminate_instance_in_auto_scaling_group(
        InstanceId=d.instance_id, ShouldDecrementDesiredCapacity=True
    )


ACTIONS: dict[str, InstanceAction] = {
    "stop": InstanceAction("stop", ("ec2:StopInstances",), _stop),
    "terminate": InstanceAction("terminate", ("ec2:TerminateInstances",), _terminate),
    "scale-in": InstanceAction("scale-in", ("autoscaling:TerminateInstanceInAutoScalingGroup",), _scale_in),
}

MARK_PERMISSIONS = (
    "ec2:CreateTags",
)  # only the ACTED/WARNED_TAG keys, only on opted-in instances of the env


def mark_acted(clients: RegionClients, d: Decision, now: datetime) -> None:
    """Record a SUCCEEDED action on the instance: a later run in the same window leaves it alone. Written
    after the action, never before: a failed action leaves no mark, so the next run tries again."""
    clients.ec2.create_tags(
        Resources=[d.instance_id], Tags=[{"Key": idle.ACTED_TAG, "Value": now.isoformat(timespec="seconds")}]
    )


def mark_warned(clients: RegionClients, d: Decision, now: datetime) -> None:
    """The warning before a stop (warn_minutes): this tag, read back by later runs, and the notification."""
    clients.ec2.create_tags(
        Resources=[d.instance_id], Tags=[{"Key": idle.WARNED_TAG, "Value": now.isoformat(timespec="seconds")}]
    )


def describe_error(exc: BaseException) -> str:
    """One line for any failure around a cloud call: the API's code and message, else the exception's
    type and text (botocore's ResponseParserError for an HTML 502 or a cut body is a plain Exception)."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping) and response.get("Error"):
        err = response["Error"]
        text = " ".join(f"{err.get('Code')}: {err.get('Message')}".split())
        return text if len(text) <= 300 else text[:297] + "..."
    return one_line(exc)


def execute(clients: RegionClients, d: Decision, now: datetime, dry_run: bool) -> Decision:
    """Carry out one decision; any failure is recorded on the decision (outcome "failed", alerted), never
    raised. The acted mark follows a succeeded action only (a failed one is retried by the next run)."""
    if d.action == "none":
        return d
    if dry_run:
        return replace(d, outcome="dry-run")
    try:
        if d.action == "warn":  # no acted mark: it would block the stop the warning announces
            mark_warned(clients, d, now)
        else:
            ACTIONS[d.action].call(clients, d)
    except Exception as exc:  # noqa: BLE001 - every failure becomes this instance's failure line
        return replace(d, outcome="failed", alert=True, error=describe_error(exc))
    if d.action != "warn":
        try:
            mark_acted(clients, d, now)
        except Exception as exc:  # noqa: BLE001 - the action itself succeeded; the instance is leaving
            note = f"done, but the {idle.ACTED_TAG} tag could not be written: {describe_error(exc)}"
            return replace(d, outcome="done", alert=True, error=note)
    return replace(d, outcome="done")


# --- keep-alive (from a workstation: `pyctl watchdog keep`) ----------------------------------------------

ENV_TAGS = ("pyctl:env", "Env")  # written on every pool instance (aws-gpu-pool, render's env tags)


def instance_env(tags: Mapping[str, str]) -> str | None:
    return next((tags[k] for k in ENV_TAGS if tags.get(k)), None)


def keep_instance(ec2: Any, instance_id: str, env: str, until: datetime | None) -> dict[str, str]:
    """Write (or with `until=None` remove) the keep-alive tag on one instance of `env`; refuse an instance
    of another env. Returns the instance's tags before the change."""
    from botocore.exceptions import ClientError

    from pyctl.errors import PyctlError

    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
            raise PyctlError(f"instance {instance_id} not found in {ec2.meta.region_name}") from None
        raise
    instance = reservations[0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    owner = instance_env(tags)
    if owner != env:
        which = f"belongs to env {owner!r}" if owner else f"carries no {' or '.join(ENV_TAGS)} tag"
        raise PyctlError(f"instance {instance_id} {which}, not env {env!r}: not changed")
    if until is None:
        ec2.delete_tags(Resources=[instance_id], Tags=[{"Key": idle.KEEP_UNTIL_TAG}])
    else:
        ec2.create_tags(
            Resources=[instance_id], Tags=[{"Key": idle.KEEP_UNTIL_TAG, "Value": idle.keep_tag_value(until)}]
        )
    return tags


# --- notifying -----------------------------------------------------------------------------------------------

PUBLISH_PERMISSIONS = ("sns:Publish",)
PARAMETER_PERMISSIONS = ("ssm:GetParameter",)


@dataclass(frozen=True)
class Notify:
    """Where summaries go: an SNS topic, and a Slack webhook whose URL is kept in SSM (SecureString)."""

    sns_topic_arn: str | None = None
    slack_webhook_parameter: str | None = None
    region: str = "us-east-1"  # of the SSM parameter; the topic's region comes from its ARN


def notify(
    target: Notify, summary: idle.Summary, factory: ClientFactory = make_client, log: str = ""
) -> list[str]:
    """Send the summary (bounded: `idle.Summary.text`; `log` says where every decision is); returns the
    errors, which the run reports (result and exit), never raises."""
    errors = []
    text = summary.text(log=log)
    if target.sns_topic_arn:
        try:
            sns = factory("sns", target.sns_topic_arn.split(":")[3])
            sns.publish(TopicArn=target.sns_topic_arn, Subject="pyctl GPU watchdog", Message=text)
        except Exception as exc:  # noqa: BLE001 - reported, the run goes on
            errors.append(f"sns: {describe_error(exc)}")
    if target.slack_webhook_parameter:
        try:
            ssm = factory("ssm", target.region)
            url = ssm.get_parameter(Name=target.slack_webhook_parameter, WithDecryption=True)["Parameter"][
                "Value"
            ]
            post_slack(url, text)
        except Exception as exc:  # noqa: BLE001 - reported, the run goes on
            errors.append(f"slack: {describe_error(exc)}")
    return errors


def log_location(environ: Mapping[str, str]) -> str:
    """Where this run's decision lines are: the Lambda's log group and stream (the runtime's reserved
    AWS_LAMBDA_LOG_GROUP_NAME / AWS_LAMBDA_LOG_STREAM_NAME), or "" outside Lambda."""
    group = environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
    stream = environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
    if not group:
        return ""
    return f"CloudWatch Logs {group}" + (f" stream {stream}" if stream else "")


def post_slack(url: str, text: str) -> None:
    if not url.startswith(("https://", "http://")):
        raise ValueError("webhook URL must be http(s)")
    body = json.dumps({"text": text}).encode()
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - scheme checked above
        resp.read()


def iam_permissions() -> dict[str, tuple[str, ...]]:
    """Every IAM action the code calls, grouped as the module's policy grants them."""
    tagged = tuple(p for a in ACTIONS.values() for p in a.permissions)
    return {
        "read": DESCRIBE_PERMISSIONS + METRIC_PERMISSIONS,
        "tagged": tagged + MARK_PERMISSIONS,
        "publish": PUBLISH_PERMISSIONS,
        "parameter": PARAMETER_PERMISSIONS,
    }


# --- one run: the WatchdogCloud verbs over regions ------------------------------------------------------------


class AwsWatchdog:
    """`pyctl.core.watchdog.WatchdogCloud` over EC2, Auto Scaling and CloudWatch in `regions`."""

    name = "aws"

    def __init__(
        self,
        regions: Sequence[str],
        *,
        prices: Mapping[str, float] | None = None,
        factory: ClientFactory = make_client,
    ) -> None:
        self.regions = list(regions)
        self.prices = dict(prices or {})
        self.factory = factory
        self._clients: dict[str, RegionClients] = {}

    def clients(self, region: str) -> RegionClients:
        if region not in self._clients:
            self._clients[region] = RegionClients.build(region, self.factory)
        return self._clients[region]

    def list_candidates(self, settings: Settings, *, opt_in_only: bool) -> Candidates:
        found = Candidates([])
        for region in self.regions:
            try:
                instances, room = describe_instances(
                    self.clients(region), opt_in_only, self.prices, settings.env
                )
            except Exception as exc:  # noqa: BLE001 - one line per failed region; the others go on
                found.errors.append(f"aws {region}: listing instances failed: {describe_error(exc)}")
                continue
            found.instances.extend(instances)
            found.room.update(room)
        return found

    def read_utilization(
        self, instances: Sequence[Instance], window: Window, settings: Settings
    ) -> Utilization:
        used = Utilization({})
        series: dict[str, list[GpuReading] | None] = {}
        for region in self.regions:
            here = [i for i in instances if i.region == region]
            if not here:
                continue
            ids = [i.instance_id for i in here]
            try:
                read, cost = read_gpu_series(self.clients(region).cloudwatch, settings, window, ids)
            except Exception as exc:  # noqa: BLE001 - discovery failed: the region's instances are unread
                used.errors.append(f"aws {region}: metrics could not be read: {describe_error(exc)}")
                read = dict.fromkeys(ids)
            else:
                used.requests.extend(cost.queries_per_request)
                used.errors.extend(f"aws {region}: {e}" for e in cost.errors)
            series.update({i.key: read.get(i.instance_id) for i in here})
        used.series = series
        return used

    def act(
        self, planned: Sequence[tuple[Instance, Decision]], now: datetime, dry_run: bool
    ) -> list[Decision]:
        return [execute(self.clients(i.region), d, now, dry_run) for i, d in planned]


def run(
    regions: Sequence[str],
    settings: Settings,
    *,
    now: datetime | None = None,
    prices: Mapping[str, float] | None = None,
    factory: ClientFactory = make_client,
    opt_in_only: bool = True,
    all_envs: bool = False,
) -> RunResult:
    """One watchdog pass over `regions` (`pyctl.core.watchdog.run_pass` on `AwsWatchdog`): the instances of
    `settings.env`, or of every env with `all_envs=True`."""
    cloud = AwsWatchdog(regions, prices=prices, factory=factory)
    return run_pass(cloud, settings, now or datetime.now(UTC), opt_in_only=opt_in_only, all_envs=all_envs)


def run_and_notify(
    regions: Sequence[str],
    settings: Settings,
    target: Notify,
    *,
    prices: Mapping[str, float] | None = None,
    log: Callable[[str], None] = print,
    now: datetime | None = None,
    factory: ClientFactory = make_client,
    all_envs: bool = False,
    log_pointer: str = "",
) -> dict[str, Any]:
    """One run as the scheduled function does it; returns the summary as JSON."""
    result = run(regions, settings, now=now, prices=prices, factory=factory, all_envs=all_envs)
    return publish_run(result, target, log=log, factory=factory, log_pointer=log_pointer)


def publish_run(
    result: RunResult,
    target: Notify,
    *,
    log: Callable[[str], None] = print,
    factory: ClientFactory = make_client,
    log_pointer: str = "",
) -> dict[str, Any]:
    """A JSON log line per decision; the summary sent only when something was done or is wrong.

    The returned summary names at most `idle.SUMMARY_TOP` instances per kind (`*_total` counts them all;
    the log lines have every one) and says `ok: false` when an action, a region, a metric read or the
    notification failed."""
    for d in result.decisions:
        log(json.dumps({"message": "gpu-watchdog decision", **d.to_json()}, sort_keys=True))
    errors = list(result.errors)
    notify_errors = notify(target, result.summary, factory, log=log_pointer) if result.summary.notify else []
    errors += notify_errors
    for e in errors:
        log(json.dumps({"message": "gpu-watchdog error", "error": e}))
    summary = result.summary
    top = idle.SUMMARY_TOP
    return {
        "ok": not errors and not summary.failed,
        "dry_run": summary.dry_run,
        **summary.named(top),
        "notified": summary.notify and not notify_errors,
        "notify_errors": notify_errors,
        "errors": errors[:top],
        "errors_total": len(errors),
        "metric_requests": len(result.metric_requests),
        "log": log_pointer,
    }
