"""The fault proxy itself: each fault reaches boto3 as the real service's answer would, decisions are
reproducible, and "lost answer" really applies the request while "drop" never does."""

from __future__ import annotations

import contextlib

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from botocore.parsers import ResponseParserError
from fakes.faultproxy import FaultProxy

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10)


@pytest.fixture
def proxy(moto_server):
    with FaultProxy(moto_server.url, seed=7, delay_seconds=0.2) as p:
        yield p


def client(proxy, name, **kw):
    return boto3.client(name, endpoint_url=proxy.url, region_name="us-east-1", config=NO_RETRY, **kw)


def _table(ddb):
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.mark.parametrize(
    ("service", "operation", "call", "code"),
    [
        ("ec2", "ec2:DescribeInstances", lambda c: c.describe_instances(), "RequestLimitExceeded"),
        ("cloudwatch", "monitoring:ListMetrics", lambda c: c.list_metrics(Namespace="CWAgent"), "Throttling"),
        (
            "autoscaling",
            "autoscaling:DescribeAutoScalingGroups",
            lambda c: c.describe_auto_scaling_groups(),
            "Throttling",
        ),
        ("dynamodb", "dynamodb:ListTables", lambda c: c.list_tables(), "ThrottlingException"),
        ("s3", "s3:ListBuckets", lambda c: c.list_buckets(), "SlowDown"),
        ("sns", "sns:ListTopics", lambda c: c.list_topics(), "Throttling"),
        ("lambda", "lambda:ListFunctions", lambda c: c.list_functions(), "TooManyRequestsException"),
        ("ssm", "ssm:GetParameter", lambda c: c.get_parameter(Name="x"), "ThrottlingException"),
    ],
)
def test_throttle_is_the_protocols_own_error(proxy, service, operation, call, code):
    c = client(proxy, service)
    proxy.once(operation, "throttle")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call(c)
    assert err.value.response["Error"]["Code"] == code
    assert proxy.calls[-1].operation == operation
    call(c) if service not in ("ssm",) else None  # the next call goes through untouched


def test_status_codes_match_the_services(proxy):
    ec2 = client(proxy, "ec2")
    proxy.once("ec2:DescribeInstances", "throttle", "500", "503")
    for status, code in ((503, "RequestLimitExceeded"), (500, "InternalError"), (503, "Unavailable")):
        with pytest.raises(botocore.exceptions.ClientError) as err:
            ec2.describe_instances()
        assert (
            err.value.response["ResponseMetadata"]["HTTPStatusCode"],
            err.value.response["Error"]["Code"],
        ) == (status, code)


def test_html_502_and_a_cut_body_are_parser_errors(proxy):
    ec2 = client(proxy, "ec2")
    cw = client(proxy, "cloudwatch")
    proxy.once("ec2:DescribeInstances", "html502")
    with pytest.raises(ResponseParserError):
        ec2.describe_instances()
    proxy.once("monitoring:ListMetrics", "html502")  # botocore's CBOR parser keeps an unparseable error body
    with pytest.raises(botocore.exceptions.ClientError) as err:
        cw.list_metrics(Namespace="CWAgent")
    assert err.value.response["Error"]["Code"] == "502"
    proxy.once("ec2:DescribeInstances", "html502_plain")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        ec2.describe_instances()
    assert err.value.response["Error"]["Code"] == "502"
    proxy.once("ec2:DescribeRegions", "truncate")
    with pytest.raises((ResponseParserError, botocore.exceptions.ConnectionClosedError)):
        ec2.describe_regions()


def test_lost_answer_applies_the_request_and_drop_does_not(proxy):
    ddb = client(proxy, "dynamodb")
    _table(ddb)
    proxy.once("dynamodb:PutItem", "lost_answer")
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        ddb.put_item(TableName="t", Item={"pk": {"S": "lost"}})
    proxy.once("dynamodb:PutItem", "drop")
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        ddb.put_item(TableName="t", Item={"pk": {"S": "dropped"}})
    assert "Item" in ddb.get_item(TableName="t", Key={"pk": {"S": "lost"}})
    assert "Item" not in ddb.get_item(TableName="t", Key={"pk": {"S": "dropped"}})
    assert [c.fault for c in proxy.calls if c.operation == "dynamodb:PutItem"] == ["lost_answer", "drop"]


def test_lost_answer_then_botocore_retry_meets_its_own_write(proxy):
    """The failure class recovery must survive: the retried conditional write sees the first one."""
    ddb = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1")  # default retries
    _table(ddb)
    proxy.once("dynamodb:PutItem", "lost_answer")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        ddb.put_item(
            TableName="t", Item={"pk": {"S": "claim"}}, ConditionExpression="attribute_not_exists(pk)"
        )
    assert err.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_s3_objects_round_trip_and_head_keeps_the_length(proxy):
    s3 = client(proxy, "s3")
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k/x.bin", Body=b"x" * 5000)
    assert s3.head_object(Bucket="bkt", Key="k/x.bin")["ContentLength"] == 5000
    assert s3.get_object(Bucket="bkt", Key="k/x.bin")["Body"].read() == b"x" * 5000
    ops = [c.operation for c in proxy.calls]
    assert ops == ["s3:CreateBucket", "s3:PutObject", "s3:HeadObject", "s3:GetObject"]


def test_random_faults_are_reproducible_per_operation(moto_server):
    def run(seed):
        with FaultProxy(moto_server.url, seed=seed) as p:
            p.rate(0.5, faults={"throttle", "503"})
            ec2 = client(p, "ec2")
            for _ in range(30):
                with contextlib.suppress(botocore.exceptions.ClientError):
                    ec2.describe_regions()
            return [c.fault for c in p.calls]

    first = run(3)
    assert first == run(3)
    assert first != run(4)
    assert 5 < sum(1 for f in first if f) < 25


def test_rate_can_target_operations(proxy):
    ec2 = client(proxy, "ec2")
    proxy.rate(1.0, operations={"ec2:StopInstances"}, faults={"throttle"})
    ec2.describe_regions()
    with pytest.raises(botocore.exceptions.ClientError):
        ec2.stop_instances(InstanceIds=["i-0123456789abcdef0"])
    assert proxy.faults_injected() == {"throttle": 1}
    proxy.clear()
    with pytest.raises(botocore.exceptions.ClientError) as err:
        ec2.stop_instances(InstanceIds=["i-0123456789abcdef0"])
    assert err.value.response["Error"]["Code"] != "RequestLimitExceeded"


def test_unknown_fault_names_are_refused(proxy):
    with pytest.raises(ValueError, match="unknown faults"):
        proxy.once("ec2:StopInstances", "explode")


def test_gcp_rest_faults_reach_the_real_compute_client(monkeypatch):
    """The same proxy in front of the Compute REST fake: operations named by collection and verb, faults
    as Compute's own error documents (429 RESOURCE_EXHAUSTED), lost answers applied."""
    from datetime import UTC, datetime

    import google.api_core.exceptions as gexc
    from fakes.gcp_compute import ComputeFake

    from pyctl.clouds.gcp.compute import compute_clients

    fake = ComputeFake("proj", datetime(2026, 12, 1, tzinfo=UTC))
    fake.add_instance("vm-1", zone="us-central1-a")
    server = fake.serve()
    try:
        with FaultProxy(fake.url, seed=1) as p:
            instances = compute_clients(p.url).instances
            p.once("compute:instances.get", "throttle")
            with pytest.raises(gexc.TooManyRequests):
                instances.get(project="proj", zone="us-central1-a", instance="vm-1")
            assert instances.get(project="proj", zone="us-central1-a", instance="vm-1").name == "vm-1"
            p.once("compute:instances.stop", "lost_answer")
            with pytest.raises(Exception):  # noqa: B017 - requests' ConnectionError, as the client raises it
                instances.stop(project="proj", zone="us-central1-a", instance="vm-1")
            assert [c.operation for c in p.calls][-1] == "compute:instances.stop"
            stopped = instances.get(project="proj", zone="us-central1-a", instance="vm-1").status
            assert stopped in ("STOPPING", "TERMINATED")
    finally:
        server.shutdown()
        server.server_close()
