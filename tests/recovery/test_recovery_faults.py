"""Spot recovery under faults, through the fault proxy against moto in server mode: the same event twice, out
of order, concurrently, and with every write's answer lost once gives exactly one replacement and one counted
interruption per instance (issue 17 items 3-4), with botocore retries on and off."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from fakes.ec2_rules import enforce
from fakes.faultproxy import FaultProxy

from pyctl.clouds.aws.recovery import LEASE, InProgress, Recovery, RecoveryConfig
from pyctl.core.interruptions import JobTemplate, RecoveryPolicy

from .conftest import AwsWorld, load_event

WRITES = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "ec2:RunInstances")
RETRIES = {"on": {"mode": "standard", "max_attempts": 4}, "off": {"total_max_attempts": 1}}


class Clock:
    """The wall clock of claim leases; a redelivery after a failure comes after the lease."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 8, 0, 5, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.now += delta


@dataclass
class Faulty:
    proxy: FaultProxy
    clients: dict[str, dict[str, Any]]  # retries -> service -> client
    moto_url: str
    clock: Clock = field(default_factory=Clock)


_PROXIES: dict[str, Faulty] = {}
_INVOCATIONS = itertools.count()  # every delivery is a new invocation (a new Lambda request id)


@pytest.fixture
def faulty(aws: AwsWorld, moto_server: Any) -> Iterator[Faulty]:
    # One proxy and one set of clients for the whole module (building a client costs ~0.3 s).
    if moto_server.url not in _PROXIES:
        proxy = FaultProxy(upstream=moto_server.url, seed=7, delay_seconds=0.05)
        clients = {
            mode: {
                service: boto3.client(
                    service, endpoint_url=proxy.url, config=Config(retries=retries, read_timeout=5)
                )
                for service in ("ec2", "dynamodb")
            }
            for mode, retries in RETRIES.items()
        }
        _PROXIES[moto_server.url] = Faulty(proxy, clients, moto_server.url)
    world = _PROXIES[moto_server.url]
    world.clock = Clock()
    stops = [enforce(c["ec2"], lookup_endpoint=moto_server.url) for c in world.clients.values()]
    world.proxy.clear()
    try:
        yield world
    finally:
        world.proxy.clear()
        for stop in stops:
            stop()


def config(aws: AwsWorld, jobs: list[str], max_interruptions: int = 3) -> RecoveryConfig:
    template = JobTemplate(
        aws.launch_template_id, ("g6.xlarge", "g6.2xlarge"), tuple(aws.subnets), (aws.security_group,)
    )
    return RecoveryConfig(
        table=aws.table,
        policy=RecoveryPolicy(max_interruptions=max_interruptions),
        jobs={job: template for job in jobs},
    )


def recovery(world: Faulty, cfg: RecoveryConfig, retries: str) -> Recovery:
    clients = world.clients[retries]
    return Recovery(
        cfg,
        ec2=clients["ec2"],
        dynamodb=clients["dynamodb"],
        ec2_launch=world.clients["off"]["ec2"],  # as the Lambda builds it
        clock=world.clock,
        sleep=lambda seconds: None,
    )


def deliver(
    world: Faulty, make: Callable[[], Recovery], event: dict[str, Any], tries: int = 8
) -> dict[str, Any]:
    """At-least-once delivery as Lambda's asynchronous retries do it: a raised error is delivered again
    (after the lease when the failed invocation may still hold a claim)."""
    for attempt in range(tries):
        try:
            return make().handle(event, invocation=f"invocation-{next(_INVOCATIONS)}")
        except InProgress:
            threading.Event().wait(0.02)
        except Exception:  # noqa: BLE001 - what Lambda does with any error: retry
            world.clock.advance(LEASE + timedelta(seconds=1))
    raise AssertionError(f"event {event['id']} never got through")


def outcome(aws: AwsWorld, job: str, victims: list[str]) -> tuple[dict[str, int], int, dict[str, str]]:
    """Per victim: live replacements; the job's counted interruptions; per victim the recorded replacement."""
    live = [
        i
        for i in aws.job_instances(job)
        if i["State"]["Name"] in ("pending", "running")
        and any(t["Key"] == "pyctl:replaces" for t in i.get("Tags", []))
    ]
    per_victim = {
        v: sum(1 for i in live if {"Key": "pyctl:replaces", "Value": v} in i["Tags"]) for v in victims
    }
    state = aws.dynamodb.get_item(
        TableName=aws.table, Key={"pk": {"S": f"JOB#{job}"}, "sk": {"S": "STATE"}}, ConsistentRead=True
    ).get("Item", {})
    recorded = {}
    for v in victims:
        row = aws.dynamodb.get_item(
            TableName=aws.table, Key={"pk": {"S": f"JOB#{job}"}, "sk": {"S": f"INT#{v}"}}, ConsistentRead=True
        ).get("Item", {})
        recorded[v] = row.get("replacement_id", {}).get("S", "")
    return per_victim, len(state.get("interruptions", {}).get("L", [])), recorded


def assert_exactly_once(aws: AwsWorld, job: str, victims: list[str]) -> None:
    per_victim, counted, recorded = outcome(aws, job, victims)
    assert per_victim == dict.fromkeys(victims, 1)
    assert counted == len(victims)
    replacements = {
        i["InstanceId"]: i for i in aws.job_instances(job) if i["State"]["Name"] in ("pending", "running")
    }
    for v in victims:
        assert recorded[v] in replacements  # the record names the live replacement


@pytest.mark.parametrize("retries", ["on", "off"])
def test_the_same_event_twice_and_out_of_order(aws: AwsWorld, faulty: Faulty, retries: str) -> None:
    victim = aws.launch_job_instance()
    cfg = config(aws, ["llm-train"])
    warning = load_event("spot_interruption_warning", victim)

    # The state change first, then the warning twice, then a re-sent warning with a new id, then the
    # rebalance recommendation that came before all of them.
    first = deliver(
        faulty, lambda: recovery(faulty, cfg, retries), load_event("state_change_terminated", victim)
    )
    assert first["action"] == "update-interruption"
    launched = deliver(faulty, lambda: recovery(faulty, cfg, retries), warning)
    assert launched["replacement"]
    assert deliver(faulty, lambda: recovery(faulty, cfg, retries), warning)["action"] == "duplicate"
    again = deliver(faulty, lambda: recovery(faulty, cfg, retries), {**warning, "id": "re-sent"})
    assert again["replacement"] is None and again["existing_replacement"] == launched["replacement"]
    assert (
        deliver(
            faulty, lambda: recovery(faulty, cfg, retries), load_event("rebalance_recommendation", victim)
        )["action"]
        == "record-rebalance"
    )
    assert_exactly_once(aws, "llm-train", [victim])


def test_concurrent_deliveries_and_concurrent_interruptions_of_one_job(aws: AwsWorld, faulty: Faulty) -> None:
    # Two instances of one job interrupted together, each warning delivered three times at once
    # (reserved concurrency 10 makes this reachable): two replacements, two counted interruptions.
    victims = [aws.launch_job_instance(), aws.launch_job_instance()]
    cfg = config(aws, ["llm-train"], max_interruptions=10)
    events = [load_event("spot_interruption_warning", v, id=f"ev-{v}") for v in victims]
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def run(event: dict[str, Any]) -> None:
        try:
            barrier.wait()
            deliver(faulty, lambda: recovery(faulty, cfg, "on"), event, tries=200)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in events for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert_exactly_once(aws, "llm-train", victims)


def _writes_of_a_clean_run(aws: AwsWorld, faulty: Faulty) -> list[str]:
    victim = aws.launch_job_instance(job="probe")
    cfg = config(aws, ["probe"])
    start = len(faulty.proxy.calls)
    deliver(faulty, lambda: recovery(faulty, cfg, "on"), load_event("spot_interruption_warning", victim))
    return [c.operation for c in faulty.proxy.calls[start:] if c.operation in WRITES]


@pytest.mark.parametrize("retries", ["on", "off"])
def test_every_writes_answer_lost_once(aws: AwsWorld, faulty: Faulty, retries: str) -> None:
    writes = _writes_of_a_clean_run(aws, faulty)
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "ec2:RunInstances"} <= set(writes)
    for index in range(len(writes)):
        job = f"job-{index}"
        victim = aws.launch_job_instance(job=job)
        cfg = config(aws, [job])
        lose_nth_write(faulty, index)
        try:
            event = load_event("spot_interruption_warning", victim, id=f"lost-{retries}-{index}")
            deliver(faulty, lambda cfg=cfg: recovery(faulty, cfg, retries), event)
            # ... and its redelivery: still nothing twice.
            deliver(faulty, lambda cfg=cfg: recovery(faulty, cfg, retries), event)
        finally:
            stop_losing(faulty)
        lost = [c for c in faulty.proxy.calls if c.fault == "lost_answer"]
        assert lost, f"write {index} ({writes[index]}) was not hit"
        faulty.proxy.calls.clear()
        assert_exactly_once(aws, job, [victim])


_HOOKS: list[tuple[Any, Callable[..., None]]] = []


def lose_nth_write(faulty: Faulty, index: int) -> None:
    """Queue a lost answer for exactly the `index`-th write the code sends (counted across its clients)."""
    seen = {"n": 0}
    lock = threading.Lock()

    def before_send(request: Any, **kwargs: Any) -> None:
        operation = kwargs.get("event_name", "").split(".", 2)
        op = f"{operation[1]}:{operation[2]}" if len(operation) == 3 else ""
        if op not in WRITES:
            return
        with lock:
            if seen["n"] == index:
                faulty.proxy.once(op, "lost_answer")
            seen["n"] += 1

    for clients in faulty.clients.values():
        for client in clients.values():
            client.meta.events.register("before-send", before_send)
            _HOOKS.append((client, before_send))


def stop_losing(faulty: Faulty) -> None:
    while _HOOKS:
        client, hook = _HOOKS.pop()
        client.meta.events.unregister("before-send", hook)


def test_a_lost_claim_answer_is_not_a_duplicate(aws: AwsWorld, faulty: Faulty) -> None:
    # Issue 17 item 3: the EVENT# claim is applied, its answer lost, botocore's retry meets its own item.
    victim = aws.launch_job_instance()
    faulty.proxy.once("dynamodb:PutItem", "lost_answer")
    result = recovery(faulty, config(aws, ["llm-train"]), "on").handle(
        load_event("spot_interruption_warning", victim), invocation="inv-1"
    )
    assert result["action"] == "record-interruption" and result["replacement"]
    assert_exactly_once(aws, "llm-train", [victim])


def test_a_failed_launch_whose_release_fails_too_is_finished_by_the_redelivery(
    aws: AwsWorld, faulty: Faulty
) -> None:
    # Issue 17 item 3: RunInstances fails, releasing the claims fails too; the delivery raises (so it is
    # retried or reaches the DLQ, never acknowledged), and the redelivery after the lease launches once.
    victim = aws.launch_job_instance()
    cfg = config(aws, ["llm-train"])
    faulty.proxy.once("ec2:RunInstances", *["500"] * 4)
    faulty.proxy.once("dynamodb:DeleteItem", "500", "500", "500", "500", "500", "500", "500", "500")
    event = load_event("spot_interruption_warning", victim)
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever EC2 answered, it must not be swallowed
        recovery(faulty, cfg, "off").handle(event, invocation="inv-1")
    with pytest.raises(InProgress):  # the lease still runs: the claim is not taken from a live owner
        recovery(faulty, cfg, "off").handle(event, invocation="inv-2")
    faulty.clock.advance(LEASE + timedelta(seconds=1))
    result = recovery(faulty, cfg, "off").handle(event, invocation="inv-3")
    assert result["replacement"]
    assert_exactly_once(aws, "llm-train", [victim])


def test_twenty_percent_faults_on_every_operation_converge_to_exactly_once(
    aws: AwsWorld, faulty: Faulty
) -> None:
    # Seeded: every operation (DynamoDB, EC2, including the look-ups) fails 20% of the time with the whole
    # mix (throttling, 5xx, HTML 502, drops, lost answers, cut answers, delays); deliveries are retried.
    victims = [aws.launch_job_instance() for _ in range(3)]
    cfg = config(aws, ["llm-train"], max_interruptions=10)
    faulty.proxy.rate(0.2)
    try:
        for victim in victims:
            warning = load_event("spot_interruption_warning", victim, id=f"soak-{victim}")
            deliver(faulty, lambda: recovery(faulty, cfg, "on"), warning, tries=30)
            deliver(faulty, lambda: recovery(faulty, cfg, "on"), warning, tries=30)
            deliver(
                faulty,
                lambda: recovery(faulty, cfg, "on"),
                load_event("state_change_terminated", victim),
                tries=30,
            )
    finally:
        faulty.proxy.clear()
    assert sum(faulty.proxy.faults_injected().values()) > 10
    assert_exactly_once(aws, "llm-train", victims)
