"""The AWS idle-GPU watchdog at fleet scale, against moto over HTTP, side by side with the seed's algorithm.

    .venv/bin/python benchmarks/watchdog_scale.py                      # N = 100, 1,000, 10,000 (long: see RESULTS.md)
    .venv/bin/python benchmarks/watchdog_scale.py --quick              # N = 100 and the fake check (make bench)
    .venv/bin/python benchmarks/watchdog_scale.py --sizes 1000 --gpus 8

For each fleet (N instances; 1, 8 or mixed 1/4/8 GPUs; launched in reservations of 1, 4 and 16 like pools
do; some tagged as reserved capacity) with seeded per-GPU CloudWatch agent series (idle, busy, one busy
GPU of several, missing, stale), it runs in separate processes, so each one's peak memory is its own:

- `pyctl watchdog run --dry-run --json` (the CLI) and the Lambda entry point (`gpu_watchdog_aws.handler`),
- the seed's algorithm: DescribeInstances without a page size, then one GetMetricStatistics per instance
  (dimension InstanceId, Average over the whole window), idle when the average is below the threshold,

and prints API calls by operation (counted by the fault proxy of tests/fakes with no fault set), wall
time, CPU time and peak RSS of the process, the lower bound of calls (ceil(series/500) GetMetricData +
ceil(instances/1000) DescribeInstances + ceil(series/500) ListMetrics), our ratio to it, and each one's
verdict accuracy against the seeded truth.

Stock moto cannot hold this fleet. CloudWatch: its ListMetrics returns a series once per datapoint and
de-duplicates quadratically; GetMetricData scans every datapoint of the region for every query. EC2: it
reads an instance's tags by scanning every tag of the region, finds an instance by id by walking every
reservation and filters every AMI once per instance launched, so launching and describing N instances
take O(N^2) (958 s to launch 10,000 over HTTP; a DescribeInstances page over 5,000 outlasted botocore's
60 s read timeout). So the moto server here runs with both stores indexed (`--serve --fast`) and builds
the fleet in its own process through moto's EC2 backend; `--check-fake` runs the same small fleet on stock
moto (launched and seeded over HTTP) and on the indexed one and checks that both give identical answers
(DescribeInstances pages with the watchdog's, the seed's and other filters, ListMetrics, GetMetricData, and
both algorithms' verdicts).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

REGION = "us-east-1"
ENV = "bench"
NAMESPACE = "CWAgent"
METRIC = "nvidia_smi_utilization_gpu"
IDLE_MINUTES = 30
THRESHOLD = 5.0
TYPES = {1: "g5.xlarge", 4: "g5.12xlarge", 8: "p4d.24xlarge"}
AMI = "ami-12345678"
CASES = ("idle", "busy", "one-busy-gpu", "missing", "stale")


# --- the indexed CloudWatch store (runs inside the moto server process) -----------------------------------


def install_indexed_cloudwatch() -> None:
    """Replace moto's CloudWatch datapoint list with a store indexed by series: answers as stock moto
    gives them (checked by --check-fake), in time proportional to the series asked for."""
    from moto.cloudwatch import models
    from moto.core.utils import utcnow

    backend_class = models.CloudWatchBackend

    def store(self: Any) -> dict[Any, Any]:
        if not hasattr(self, "_series"):
            self._series = {}  # (namespace, name, frozenset(dims)) -> [representative, times, values]
            self._by_dimension = {}  # (name, value) -> set of series keys
        return self._series

    def add_point(
        self: Any, namespace: str, name: str, dims: list[dict[str, str]], when: datetime, value: float
    ) -> None:
        series = store(self)
        key = (namespace, name, frozenset((d["Name"], d["Value"]) for d in dims))
        entry = series.get(key)
        if entry is None:
            entry = [models.MetricDatum(namespace, name, value, dims, when), array("d"), array("d")]
            series[key] = entry
            for pair in key[2]:
                self._by_dimension.setdefault(pair, set()).add(key)
        entry[1].append(when.timestamp())
        entry[2].append(value)

    def put_metric_data(self: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        for i, metric in enumerate(metric_data):
            self._validate_parameters_put_metric_data(metric, i + 1)
        for m in metric_data:
            when = m.get("Timestamp") or utcnow()
            add_point(
                self, namespace, m["MetricName"], m.get("Dimensions", []), when, float(m.get("Value", 0))
            )

    def matching(
        self: Any, namespace: str | None, name: str | None, dimensions: list[dict[str, str]]
    ) -> list[Any]:
        series = store(self)
        keys: Any = series.keys()
        valued = [(d["Name"], d["Value"]) for d in dimensions if d.get("Value") is not None]
        if valued:
            keys = set.intersection(*(self._by_dimension.get(p, set()) for p in valued))
        names = {d["Name"] for d in dimensions}
        out = []
        for key in keys:
            if (namespace and key[0] != namespace) or (name and key[1] != name):
                continue
            if not names <= {n for n, _ in key[2]}:
                continue
            out.append(key)
        return sorted(out, key=lambda k: series[k][1][0] if len(series[k][1]) else 0.0)

    def list_metrics(
        self: Any, next_token: str | None, namespace: str, metric_name: str, dimensions: list[dict[str, str]]
    ) -> Any:
        if next_token:
            return original_list_metrics(self, next_token, namespace, metric_name, dimensions)
        series = store(self)
        return self._get_paginated([series[k][0] for k in matching(self, namespace, metric_name, dimensions)])

    def get_metric_data(
        self: Any,
        queries: list[dict[str, Any]],
        start_time: datetime,
        end_time: datetime,
        scan_by: str = "TimestampAscending",
    ) -> list[dict[str, Any]]:
        start_time, end_time = start_time.replace(microsecond=0), end_time.replace(microsecond=0)
        if start_time >= end_time:
            raise models.ValidationError("The parameter EndTime must be greater than StartTime.")
        series = store(self)
        start, end = start_time.timestamp(), end_time.timestamp()
        results = []
        for query in queries:
            stat = query["MetricStat"]
            metric = stat["Metric"]
            key = (
                metric["Namespace"],
                metric["MetricName"],
                frozenset((d["Name"], d["Value"]) for d in metric.get("Dimensions", [])),
            )
            period = int(stat["Period"])
            buckets: dict[int, list[float]] = {}
            entry = series.get(key)
            if entry is not None:
                for t, v in zip(entry[1], entry[2], strict=True):
                    if start <= t < end:
                        buckets.setdefault(int((t - start) // period), []).append(v)
            order = sorted(buckets, reverse=scan_by == "TimestampDescending")
            values = [_statistic(stat["Stat"], buckets[b]) for b in order]
            stamps = [start_time + timedelta(seconds=b * period) for b in order]
            row = {
                "id": query["Id"],
                "label": query.get("Label") or f"{metric['MetricName']} {stat['Stat']}",
                "values": values,
                "timestamps": stamps,
                "status_code": "Complete",
            }
            if query.get("ReturnData", True):
                results.append(row)
        return results

    def get_metric_statistics(
        self: Any,
        namespace: str,
        metric_name: str,
        start_time: datetime,
        end_time: datetime,
        period: int,
        stats: list[str],
        dimensions: list[dict[str, str]],
        unit: str | None = None,
    ) -> list[Any]:
        start_time, end_time = start_time.replace(microsecond=0), end_time.replace(microsecond=0)
        if start_time >= end_time:
            raise models.InvalidParameterValue(
                "The parameter StartTime must be less than the parameter EndTime."
            )
        series = store(self)
        start, end = start_time.timestamp(), end_time.timestamp()
        points = sorted(
            (t, v)
            for key in matching(self, namespace, metric_name, dimensions)
            for t, v in zip(series[key][1], series[key][2], strict=True)
            if start <= t < end
        )
        if not points:
            return []
        out, first = [], points[0][0]
        groups: dict[int, list[float]] = {}
        for t, v in points:
            groups.setdefault(int((t - first) // period), []).append(v)
        for n in sorted(groups):
            s = models.Statistics(stats, datetime.fromtimestamp(first + n * period, tz=UTC))
            s.metric_data = [
                models.MetricDatum(namespace, metric_name, v, [], s.timestamp) for v in groups[n]
            ]
            out.append(s)
        return out

    original_list_metrics = backend_class.list_metrics
    backend_class.put_metric_data = put_metric_data
    backend_class.list_metrics = list_metrics
    backend_class.get_metric_data = get_metric_data
    backend_class.get_metric_statistics = get_metric_statistics
    backend_class.bench_add_point = add_point


def install_indexed_ec2() -> None:
    """Replace moto's EC2 lookups that scan the whole region for one resource with dictionary look-ups:
    answers as stock moto gives them (checked by --check-fake), in time independent of the fleet's size.

    Stock moto reads one instance's tags with DescribeTags over every tag of the region (a regex per
    resource id), finds an instance by id by walking every reservation, and looks its AMI up by filtering
    every AMI, once per instance launched; so building and describing N instances takes O(N^2).
    """
    from moto.ec2.models import amis, core, instances
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    def get_tags(self: Any) -> list[dict[str, str]]:
        if not self.id:
            return []
        # The tag store is keyed by resource id already; DescribeTags' resource-id filter is an anchored
        # regex, so it also matches longer ids with this prefix: moto's ids are of one length per type.
        tags = self.ec2_backend.tags.get(self.id, {})
        kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
        return [
            {"resource_id": self.id, "key": k, "value": v, "resource_type": kind} for k, v in tags.items()
        ]

    def get_instance(self: Any, instance_id: str) -> Any:
        index = self.__dict__.setdefault("_bench_instance_index", {})
        found = index.get(instance_id)
        if found is None or found.id != instance_id:
            index.clear()  # rebuilt from the reservations on a miss: launches add instances
            for reservation in self.reservations.values():
                for instance in reservation.instances:
                    index[instance.id] = instance
            found = index.get(instance_id)
        if found is None:
            return original_get_instance(self, instance_id)  # its own error
        return found

    def describe_images(self: Any, ami_ids: Any = None, filters: Any = None, **kwargs: Any) -> Any:
        # Instance.__init__ asks for its AMI by an image-id filter over every AMI moto knows (~1,300);
        # the benchmark registers none, so that answer never changes during a run.
        if not ami_ids and not kwargs and filters and list(filters) == ["image-id"]:
            key = str(filters["image-id"])
            cache = self.__dict__.setdefault("_bench_image_cache", {})
            if key not in cache:
                cache[key] = original_describe_images(self, filters=filters)
            return list(cache[key])
        return original_describe_images(self, ami_ids=ami_ids, filters=filters, **kwargs)

    original_get_instance = instances.InstanceBackend.get_instance
    original_describe_images = amis.AmiBackend.describe_images
    core.TaggedEC2Resource.get_tags = get_tags
    instances.InstanceBackend.get_instance = get_instance
    amis.AmiBackend.describe_images = describe_images


def _statistic(stat: str, values: list[float]) -> float:
    if stat == "Maximum":
        return max(values)
    if stat == "Minimum":
        return min(values)
    if stat == "Sum":
        return sum(values)
    if stat == "SampleCount":
        return float(len(values))
    return sum(values) / len(values)


def serve(fast: bool) -> None:
    """The moto server process: prints its URL, then reads commands from stdin: `seed <file>` (metrics),
    `launch <file>` (a fleet plan: launched in this process, the ids printed as JSON) and `quit`."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if fast:
        install_indexed_cloudwatch()
        install_indexed_ec2()
    from moto.backends import get_backend
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "seed":
            backend = get_backend("cloudwatch")["123456789012"][REGION]
            for namespace, name, dims, when, value in _points(json.loads(Path(arg).read_text())):
                backend.bench_add_point(namespace, name, dims, when, value)
            print("ok", flush=True)
        elif command == "launch":
            print(json.dumps(launch_in_process(json.loads(Path(arg).read_text()))), flush=True)
        elif command == "quit":
            break
    server.stop()


# --- the fleet --------------------------------------------------------------------------------------------


def plan_fleet(n: int, gpus: str, seed: int) -> list[dict[str, Any]]:
    """n instances: GPU count, case, reserved or not, in launch groups (reservations) of 1, 4 and 16."""
    rng = random.Random(f"{seed}:{n}:{gpus}")
    weights = {"idle": 40, "busy": 30, "one-busy-gpu": 10, "missing": 10, "stale": 10}
    out = []
    while len(out) < n:
        size = min(rng.choice((1, 4, 16)), n - len(out))
        count = {"1": 1, "8": 8}.get(gpus) or rng.choice((1, 4, 8))
        for _ in range(size):
            case = rng.choices(list(weights), list(weights.values()))[0]
            if case == "one-busy-gpu" and count == 1:
                case = "busy"
            out.append({"gpus": count, "case": case, "reserved": rng.random() < 0.05, "size": size})
    return out


def launch_groups(plan: list[dict[str, Any]]) -> list[tuple[int, str, dict[str, str]]]:
    """(count, instance type, tags) per reservation: consecutive entries of one size and GPU count."""
    groups = []
    i = 0
    while i < len(plan):
        size, gpus, reserved = plan[i]["size"], plan[i]["gpus"], plan[i]["reserved"]
        j = i
        while j < len(plan) and j - i < size and plan[j]["gpus"] == gpus and plan[j]["reserved"] == reserved:
            j += 1
        tags = {"AutoShutdown": "true", "pyctl:env": ENV, "Name": f"bench-{i}"}
        if reserved:
            tags["pyctl:capacity"] = "reserved"
        groups.append((j - i, TYPES[gpus], tags))
        i = j
    return groups


def _tag_spec(tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def launch(ec2: Any, plan: list[dict[str, Any]]) -> list[str]:
    """RunInstances over HTTP, one call per reservation; returns the ids."""
    ids: list[str] = []
    for count, instance_type, tags in launch_groups(plan):
        res = ec2.run_instances(
            ImageId=AMI,
            MinCount=count,
            MaxCount=count,
            InstanceType=instance_type,
            TagSpecifications=_tag_spec(tags),
        )
        ids.extend(x["InstanceId"] for x in res["Instances"])
    return ids


def launch_in_process(plan: list[dict[str, Any]]) -> list[str]:
    """The same reservations through moto's EC2 backend in the server process (no HTTP, no response to
    serialize): the arguments moto's RunInstances handler passes for the request `launch` sends."""
    from moto.backends import get_backend
    from moto.ec2.utils import convert_tag_spec

    backend = get_backend("ec2")["123456789012"][REGION]
    ids: list[str] = []
    for count, instance_type, tags in launch_groups(plan):
        reservation = backend.run_instances(
            AMI,
            count,
            None,
            [],
            instance_type=instance_type,
            is_instance_type_default=False,
            placement=None,
            placement_hostid=None,
            region_name=REGION,
            subnet_id=None,
            key_name=None,
            security_group_ids=[],
            nics=[],
            private_ip=None,
            associate_public_ip=None,
            tags=convert_tag_spec(_tag_spec(tags)),
            ebs_optimized=False,
            disable_api_stop=False,
            instance_market_options={},
            instance_initiated_shutdown_behavior=None,
            launch_template={},
            hibernation_options={},
            iam_instance_profile_name=None,
            iam_instance_profile_arn=None,
            monitoring_state="disabled",
            ipv6_address_count=None,
            metadata_options={},
            client_token=str(uuid.uuid4()),  # botocore fills this idempotency token in likewise
        )
        ids.extend(i.id for i in reservation.instances)
    return ids


def seed_spec(plan: list[dict[str, Any]], ids: list[str], now: datetime, seed: int) -> list[list[Any]]:
    return [
        [iid, p["gpus"], p["case"], now.isoformat(), f"{seed}:{n}"]
        for n, (iid, p) in enumerate(zip(ids, plan, strict=True))
    ]


def _points(spec: list[list[Any]]) -> Any:
    """(namespace, name, dims, when, value) for each seeded datapoint; one a minute per GPU."""
    for iid, gpus, case, now_text, seed in spec:
        if case == "missing":
            continue
        now = datetime.fromisoformat(now_text)
        rng = random.Random(seed)  # by position in the fleet, not by id: the same data on every server
        busy_gpu = rng.randrange(gpus)
        # Up to 30 minutes past the seeding time too: the runs happen minutes later, at the real clock.
        minutes = range(40, 90) if case == "stale" else range(-30, IDLE_MINUTES + 3)
        for g in range(gpus):
            dims = [
                {"Name": "InstanceId", "Value": iid},
                {"Name": "index", "Value": str(g)},
                {"Name": "name", "Value": "NVIDIA A100-SXM4-40GB"},
            ]
            for m in minutes:
                if case == "busy":
                    value = rng.uniform(30, 95)
                elif case == "one-busy-gpu" and g == busy_gpu and m <= 5:
                    value = 60.0
                else:
                    value = rng.uniform(0, 4.5)
                yield NAMESPACE, METRIC, dims, now - timedelta(minutes=m), round(value, 2)


def truth(case: str) -> str:
    return "idle" if case == "idle" else "not idle"


# --- the measured processes -------------------------------------------------------------------------------


def child(mode: str, out: str, now_text: str) -> None:
    """One measured run in this (fresh) process; writes {verdicts, wall, cpu, maxrss_mb} to `out`."""
    import contextlib
    import io

    now = datetime.fromisoformat(now_text)
    started, cpu0 = time.perf_counter(), time.process_time()
    verdicts: dict[str, str] = {}
    if mode == "cli":
        from pyctl.cli import cli

        buffer = io.StringIO()
        argv = ["watchdog", "run", "--region", REGION, "--all-envs", "--dry-run", "--json"]
        argv += ["--max-actions", "1000000", "--min-uptime-minutes", "0"]
        with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):  # exit 1: errors
            cli(argv, standalone_mode=False)
        verdicts = {d["instance_id"]: d["verdict"] for d in json.loads(buffer.getvalue())}
        extra: dict[str, Any] = {}
    elif mode == "lambda":
        from pyctl.functions import gpu_watchdog_aws

        os.environ.update(
            WATCHDOG_REGIONS=REGION,
            WATCHDOG_ENV=ENV,
            WATCHDOG_DRY_RUN="true",
            WATCHDOG_MAX_ACTIONS_PER_RUN="1000000",
            WATCHDOG_MIN_UPTIME_MINUTES="0",
            AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/bench-watchdog",
            AWS_LAMBDA_LOG_STREAM_NAME="2026/12/02/[$LATEST]bench",
        )
        logged = io.StringIO()
        with contextlib.redirect_stdout(logged):  # the Lambda's log lines
            result = gpu_watchdog_aws.handler({}, None)
        lines = logged.getvalue().splitlines()
        for line in lines:
            doc = json.loads(line)
            if doc.get("message") == "gpu-watchdog decision":
                verdicts[doc["instance_id"]] = doc["verdict"]
        # The summary the topic would get at this fleet size (built, not sent: no topic here).
        extra = {"result_bytes": len(json.dumps(result)), "summary_bytes": _summary_bytes(lines)}
    else:
        verdicts = seed_algorithm(now)
        extra = {}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(out).write_text(
        json.dumps(
            {
                "verdicts": verdicts,
                "wall": time.perf_counter() - started,
                "cpu": time.process_time() - cpu0,
                "maxrss_mb": usage.ru_maxrss / 1024,
                **extra,
            }
        )
    )


def _summary_bytes(lines: list[str]) -> int:
    """Size of the SNS message for this run: every decision not dry-run, as a real run would act."""
    from dataclasses import replace

    from pyctl.core import idle

    decisions = []
    for line in lines:
        doc = json.loads(line)
        if doc.get("message") != "gpu-watchdog decision":
            continue
        outcome = "done" if doc["action"] != "none" else ""
        decisions.append(
            replace(
                idle.Decision(
                    doc["instance_id"],
                    doc["verdict"],
                    doc["action"],
                    doc["reason"],
                    region=doc["region"],
                    instance_type=doc["instance_type"],
                    hourly_cost=doc["hourly_cost"],
                    alert=doc["alert"],
                ),
                outcome=outcome,
            )
        )
    summary = idle.summarize(decisions, False)
    return len(summary.text(log="CloudWatch Logs /aws/lambda/bench-watchdog").encode())


def seed_algorithm(now: datetime) -> dict[str, str]:
    """The seed's watchdog: all running instances (no page size), one GetMetricStatistics per instance
    (dimension InstanceId, Average over the window); idle when the average is below the threshold."""
    import boto3

    ec2 = boto3.client("ec2", region_name=REGION)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    # The run's own clock, like the CLI's; the fake check pins it to the seeding time, as its two servers
    # run a minute apart and the seed's window Average moves with the clock (one-busy-GPU nodes).
    clock = now if os.environ.get("BENCH_PIN_CLOCK") else datetime.now(UTC)
    end = clock.replace(second=0, microsecond=0)
    start = end - timedelta(minutes=IDLE_MINUTES)
    verdicts = {}
    filters = [
        {"Name": "instance-state-name", "Values": ["running"]},
        {"Name": "tag:AutoShutdown", "Values": ["true"]},
    ]
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                points = cloudwatch.get_metric_statistics(
                    Namespace=NAMESPACE,
                    MetricName=METRIC,
                    Dimensions=[{"Name": "InstanceId", "Value": instance["InstanceId"]}],
                    StartTime=start,
                    EndTime=end,
                    Period=IDLE_MINUTES * 60,
                    Statistics=["Average", "SampleCount"],
                )["Datapoints"]
                total = sum(p["SampleCount"] for p in points)
                average = sum(p["Average"] * p["SampleCount"] for p in points) / total if total else None
                verdicts[instance["InstanceId"]] = (
                    "no-data" if average is None else "idle" if average < THRESHOLD else "busy"
                )
    return verdicts


def measure(
    mode: str, url: str, now: datetime, pin_clock: bool = False
) -> tuple[dict[str, Any], dict[str, int]]:
    """Run `mode` in a fresh process through a counting proxy; (its figures, calls by operation)."""
    from fakes.faultproxy import FaultProxy

    with FaultProxy(upstream=url, seed=0) as proxy, tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url, "PYTHONPATH": str(ROOT)}
        if pin_clock:
            env["BENCH_PIN_CLOCK"] = "1"
        subprocess.run(
            [sys.executable, __file__, "--child", mode, out.name, now.isoformat()], env=env, check=True
        )
        figures = json.loads(Path(out.name).read_text())
        return figures, proxy.counts()


# --- the report -------------------------------------------------------------------------------------------


def start_server(fast: bool) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", *(["--fast"] if fast else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def server_command(proc: subprocess.Popen[str], command: str, payload: Any) -> str:
    """Send `command <file with payload as JSON>` to the server process; its one-line answer."""
    assert proc.stdin is not None and proc.stdout is not None
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(payload, f)
    try:
        proc.stdin.write(f"{command} {f.name}\n")
        proc.stdin.flush()
        return proc.stdout.readline().strip()
    finally:
        os.unlink(f.name)


def stop_server(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("quit\n")
    proc.stdin.flush()
    proc.wait(timeout=30)


def accuracy(verdicts: dict[str, str], expected: dict[str, str]) -> dict[str, Any]:
    wrong_idle = sum(1 for i, t in expected.items() if t != "idle" and verdicts.get(i) == "idle")
    missed = sum(1 for i, t in expected.items() if t == "idle" and verdicts.get(i) != "idle")
    right = len(expected) - wrong_idle - missed
    return {"accuracy": right / len(expected), "wrongly_idle": wrong_idle, "missed_idle": missed}


def one_fleet(
    n: int, gpus: str, seed: int, modes: tuple[str, ...] = ("cli", "lambda", "seed")
) -> dict[str, Any]:
    proc, url = start_server(fast=True)
    try:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        plan = plan_fleet(n, gpus, seed)
        t0 = time.perf_counter()
        ids = json.loads(server_command(proc, "launch", plan))
        launched = time.perf_counter() - t0
        assert server_command(proc, "seed", seed_spec(plan, ids, now, seed)) == "ok"
        setup = time.perf_counter() - t0
        expected = {i: truth(p["case"]) for i, p in zip(ids, plan, strict=True)}
        series = sum(p["gpus"] for p in plan if p["case"] != "missing")
        row: dict[str, Any] = {
            "n": n,
            "gpus": gpus,
            "series": series,
            "setup_s": round(setup, 1),
            "launch_s": round(launched, 1),
        }
        for mode in modes:
            figures, calls = measure(mode, url, now)
            row[mode] = {
                "calls": calls,
                "total_calls": sum(calls.values()),
                "wall_s": round(figures["wall"], 2),
                "cpu_s": round(figures["cpu"], 2),
                "peak_rss_mb": round(figures["maxrss_mb"], 1),
                **accuracy(figures["verdicts"], expected),
                **{k: figures[k] for k in ("result_bytes", "summary_bytes") if k in figures},
            }
        read_series = sum(p["gpus"] for p in plan if p["case"] != "missing")  # every instance is a candidate
        row["lower_bound"] = math.ceil(read_series / 500) + math.ceil(n / 1000) + math.ceil(series / 500)
        for mode in set(modes) & {"cli", "lambda"}:
            row[mode]["ratio_to_lower_bound"] = round(row[mode]["total_calls"] / row["lower_bound"], 3)
            # moto pages DescribeInstances by reservations (MaxResults 1000 = up to 16,000 instances here),
            # AWS by instances: the same run with AWS's ceil(N/1000) pages.
            aws_calls = row[mode]["total_calls"] - row[mode]["calls"].get("ec2:DescribeInstances", 0)
            aws_calls += math.ceil(n / 1000)
            row[mode]["calls_with_aws_paging"] = aws_calls
            row[mode]["ratio_with_aws_paging"] = round(aws_calls / row["lower_bound"], 3)
        row["per_instance_discovery_calls"] = n  # ListMetrics with an InstanceId filter, one per instance
        return row
    finally:
        stop_server(proc)


def _normalized(value: Any, names: dict[str, str]) -> Any:
    """A DescribeInstances answer with what differs between two servers by chance made positional: the
    random ids (instance, reservation, ENI, volume...), client tokens, MAC and IP addresses, DNS names and
    times; each to its order of first appearance, so two answers are equal only with the same shape."""
    if isinstance(value, dict):
        return {k: _normalized(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v, names) for v in value]
    if isinstance(value, datetime):
        return "<time>"
    if isinstance(value, str):
        value = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<time>", value)  # "User initiated (...)"
    if isinstance(value, str) and (
        re.fullmatch(r"[a-z]+(-[a-z]+)?-[0-9a-f]{8,17}", value)
        or re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", value)
        or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value)
        or re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", value)
        or re.search(r"\d+-\d+-\d+-\d+", value)
    ):
        return names.setdefault(value, f"<{len(names)}>")
    return value


def describe_answers(ec2: Any, ids: list[str]) -> list[Any]:
    """DescribeInstances as the watchdog and the seed ask (filters, page sizes), and by id, every page of
    each, after stopping two instances; normalized by `_normalized`."""
    ec2.stop_instances(InstanceIds=ids[3:5])
    watchdog_filters = [
        {"Name": "instance-state-name", "Values": ["running"]},
        {"Name": "tag-key", "Values": ["AutoShutdown"]},
        {"Name": "tag:pyctl:env", "Values": [ENV]},
    ]
    asks: list[dict[str, Any]] = [
        {"Filters": watchdog_filters, "PaginationConfig": {"PageSize": 1000}},
        {"Filters": watchdog_filters, "PaginationConfig": {"PageSize": 5}},
        {"Filters": [{"Name": "tag:AutoShutdown", "Values": ["true"]}, watchdog_filters[0]]},
        {"Filters": [{"Name": "tag:pyctl:env", "Values": ["other"]}]},
        {"Filters": [{"Name": "instance-state-name", "Values": ["stopped", "stopping"]}]},
        {"PaginationConfig": {"PageSize": 7}},
        {"InstanceIds": ids[::5]},
    ]
    names: dict[str, str] = {}
    out = []
    for ask in asks:
        pages = ec2.get_paginator("describe_instances").paginate(**ask)
        out.append([_normalized(p["Reservations"], names) for p in pages])
    return out


def check_fake(seed: int) -> bool:
    """The same small fleet on stock moto (launched and seeded over HTTP) and on the indexed stores
    (launched in the server process, as measured fleets are; seeded over HTTP): identical answers (the
    watchdog's decisions, the seed algorithm's verdicts, DescribeInstances, ListMetrics, GetMetricData)."""
    import boto3

    answers = []
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    plan = plan_fleet(24, "mixed", seed)
    for fast in (False, True):
        proc, url = start_server(fast)
        try:
            ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=url)
            cloudwatch = boto3.client("cloudwatch", region_name=REGION, endpoint_url=url)
            # Stock moto launches over HTTP; the indexed one in its process, as the measured fleets are.
            ids = json.loads(server_command(proc, "launch", plan)) if fast else launch(ec2, plan)
            data = [
                {"MetricName": name, "Dimensions": dims, "Timestamp": when, "Value": value, "Unit": "Percent"}
                for _, name, dims, when, value in _points(seed_spec(plan, ids, now, seed))
            ]
            for i in range(0, len(data), 1000):
                cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[i : i + 1000])
            name_of = {i: f"#{n}" for n, i in enumerate(ids)}
            decisions, _ = measure("cli", url, now)
            baseline, _ = measure("seed", url, now, pin_clock=True)
            listed = sorted(
                {
                    tuple(sorted((d["Name"], name_of.get(d["Value"], d["Value"])) for d in m["Dimensions"]))
                    for p in cloudwatch.get_paginator("list_metrics").paginate(
                        Namespace=NAMESPACE, MetricName=METRIC
                    )
                    for m in p["Metrics"]
                }
            )  # distinct series: stock moto lists a series once per datapoint
            end = now.replace(second=0)
            queries = [
                {
                    "Id": f"q{k}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": NAMESPACE,
                            "MetricName": METRIC,
                            "Dimensions": [
                                {"Name": "InstanceId", "Value": iid},
                                {"Name": "index", "Value": "0"},
                                {"Name": "name", "Value": "NVIDIA A100-SXM4-40GB"},
                            ],
                        },
                        "Period": 60,
                        "Stat": stat,
                    },
                }
                for k, (iid, stat) in enumerate((i, s) for i in ids for s in ("Maximum", "Average"))
            ]
            metric_data = cloudwatch.get_metric_data(
                MetricDataQueries=queries,
                StartTime=end - timedelta(minutes=IDLE_MINUTES),
                EndTime=end,
                ScanBy="TimestampAscending",
            )["MetricDataResults"]
            described = describe_answers(ec2, ids)
            answers.append(
                {
                    "describe_instances": described,
                    "watchdog": {name_of[i]: v for i, v in decisions["verdicts"].items()},
                    "seed": {name_of[i]: v for i, v in baseline["verdicts"].items()},
                    "list_metrics": listed,
                    "get_metric_data": [(r["Id"], r["Timestamps"], r["Values"]) for r in metric_data],
                }
            )
        finally:
            stop_server(proc)
    same = answers[0] == answers[1]
    stock = answers[0]
    print(
        f"fake check (24 mixed instances, stock moto vs indexed store): {'identical' if same else 'DIFFERENT'} "
        f"({sum(len(p) for a in stock['describe_instances'] for p in a)} DescribeInstances reservations in "
        f"{sum(len(a) for a in stock['describe_instances'])} pages, "
        f"{len(stock['list_metrics'])} series listed, {len(stock['get_metric_data'])} GetMetricData results, "
        f"{len(stock['watchdog'])} watchdog verdicts, {len(stock['seed'])} seed verdicts)"
    )
    if not same:
        for key in answers[0]:
            if answers[0][key] != answers[1][key]:
                print(f"  differs: {key}")
                if os.environ.get("BENCH_DEBUG"):  # both answers as JSON, to diff
                    for label, answer in (("stock", answers[0]), ("fast", answers[1])):
                        text = json.dumps(answer[key], indent=1, default=str)
                        Path(os.environ["BENCH_DEBUG"], f"{key}.{label}.json").write_text(text)
    return same


def print_row(row: dict[str, Any]) -> None:
    print(
        f"\nN={row['n']} gpus={row['gpus']} series={row['series']} (fleet setup {row['setup_s']} s); "
        f"lower bound {row['lower_bound']} calls; per-instance ListMetrics discovery would be {row['per_instance_discovery_calls']} calls"
    )
    print(
        "| run | calls | x lower bound | wall s | CPU s | peak RSS MB | accuracy | wrongly idle | missed idle | calls by operation |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for mode, label in (
        ("cli", "pyctl watchdog run (CLI)"),
        ("lambda", "Lambda handler"),
        ("seed", "seed algorithm"),
    ):
        if mode not in row:
            continue
        r = row[mode]
        ratio = r.get("ratio_to_lower_bound", round(r["total_calls"] / row["lower_bound"], 2))
        ops = ", ".join(f"{k.split(':')[1]} {v}" for k, v in sorted(r["calls"].items()))
        print(
            f"| {label} | {r['total_calls']} | {ratio} | {r['wall_s']} | {r['cpu_s']} | {r['peak_rss_mb']} | "
            f"{r['accuracy']:.3f} | {r['wrongly_idle']} | {r['missed_idle']} | {ops} |"
        )
    lam = row["lambda"]
    print(
        f"Lambda result {lam.get('result_bytes')} bytes; SNS summary if it acted on every idle instance: {lam.get('summary_bytes')} bytes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--gpus", choices=["1", "8", "mixed"], nargs="+", default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--quick", action="store_true", help="N=100 (mixed GPUs) and the fake check: under 3 minutes"
    )
    parser.add_argument(
        "--modes", nargs="+", choices=["cli", "lambda", "seed"], default=["cli", "lambda", "seed"]
    )
    parser.add_argument("--skip-fake-check", action="store_true")
    parser.add_argument("--check-fake-only", action="store_true", help="only the stock vs indexed moto check")
    parser.add_argument("--json", dest="json_out", help="also write the rows to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fast", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", REGION),
    ):
        os.environ.setdefault(name, value)  # moto's fake credentials
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    if args.serve:
        serve(args.fast)
        return
    if args.child:
        child(*args.child)
        return
    sizes = [100] if args.quick else args.sizes
    if args.quick and not args.gpus:
        args.gpus = ["mixed"]
    ok = args.skip_fake_check or check_fake(args.seed)
    if args.check_fake_only:
        sys.exit(0 if ok else 1)
    rows = []
    for n in sizes:
        mixes = args.gpus or (["1", "8", "mixed"] if n <= 1000 else ["8"])
        for gpus in mixes:
            row = one_fleet(n, gpus, args.seed, tuple(args.modes))
            print(json.dumps(row), flush=True)  # the raw row first: the table below is its view
            print_row(row)
            sys.stdout.flush()
            rows.append(row)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
