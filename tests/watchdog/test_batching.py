"""GetMetricData batching, counted on the wire: at most 500 queries and 100,800 datapoints per request
(moto enforces neither, so the code must)."""

from __future__ import annotations

from datetime import timedelta

import boto3

from pyctl.clouds.aws import watchdog
from pyctl.core import idle
from pyctl.core.idle import Settings

from .conftest import METRIC, NAMESPACE, REGION, CallRecorder, Fleet


def seed_fleet(fleet: Fleet, instances: int, gpus: int) -> list[str]:
    res = fleet.ec2.run_instances(
        ImageId=fleet.ami,
        MinCount=instances,
        MaxCount=instances,
        InstanceType="p4d.24xlarge",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "AutoShutdown", "Value": "true"}]}],
    )
    ids = [i["InstanceId"] for i in res["Instances"]]
    data = [
        {
            "MetricName": METRIC,
            "Dimensions": [{"Name": "InstanceId", "Value": i}, {"Name": "index", "Value": str(g)}],
            "Timestamp": fleet.now - timedelta(minutes=2),
            "Value": 1.0,
        }
        for i in ids
        for g in range(gpus)
    ]
    cw = boto3.client("cloudwatch", region_name=REGION)
    for k in range(0, len(data), 1000):
        cw.put_metric_data(Namespace=NAMESPACE, MetricData=data[k : k + 1000])
    return ids


def test_requests_hold_at_most_500_queries_and_100800_datapoints(
    fleet: Fleet, recorder: CallRecorder
) -> None:
    ids = seed_fleet(fleet, instances=65, gpus=8)
    result = watchdog.run([REGION], Settings(), now=fleet.now, factory=recorder, all_envs=True)
    sent = [len(p["MetricDataQueries"]) for p in recorder.ops("GetMetricData")]
    assert sent == [500, 20] == result.metric_requests
    # Every instance got its 8 series back, also those whose queries went in the second request.
    assert sorted(d.instance_id for d in result.decisions) == sorted(ids)
    assert {len(d.gpus) for d in result.decisions} == {8}
    # One datapoint per GPU does not cover a 30-minute window: no-data, never idle.
    assert {(d.verdict, d.action) for d in result.decisions} == {("no-data", "none")}
    # Query ids are unique per request, as GetMetricData requires.
    for params in recorder.ops("GetMetricData"):
        query_ids = [q["Id"] for q in params["MetricDataQueries"]]
        assert len(set(query_ids)) == len(query_ids)
    # A day-long window: 1,440 one-minute points a query, so 70 queries fill the 100,800-datapoint limit.
    day = CallRecorder()
    watchdog.run([REGION], Settings(idle_minutes=1440), now=fleet.now, factory=day, all_envs=True)
    sent = [len(p["MetricDataQueries"]) for p in day.ops("GetMetricData")]
    assert sent == [70] * 7 + [30]
    assert all(n * 1440 <= idle.MAX_DATAPOINTS_PER_REQUEST for n in sent)
