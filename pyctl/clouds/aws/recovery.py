"""Spot recovery I/O: the DynamoDB record (conditional writes make every side effect happen once),
DescribeInstances facts, replacement launches from the job's launch template, and the on-demand fallback
of spot pools' Auto Scaling groups.

Table layout (one table, keys `pk`/`sk`):
  JOB#<job>            / STATE          the job: done, market, on_demand_since/until, interruption times
                                        (appended atomically), `counted` (the instances counted), last checkpoint
  JOB#<job>            / INT#<instance> one interruption: instance type, AZ, time, checkpoint step, replacement,
                                        the event and invocation that first wrote it
  EVENT#<id>#<inst>    / EVENT          delivery claim: owner (invocation), lease, status claimed|done
                                        (expires after a week, DynamoDB TTL `expires_at`)
  REPLACE#<instance>   / REPLACE        launch claim for one interrupted instance: owner, lease, status
                                        claimed|launched, replacement_id
  FALLBACK             / ASG#<group>    a spot pool's group: mode spot|on-demand, on_demand_since/until

A claim is ours when it is new, when our own earlier write made it (a lost answer: botocore's retry meets
ConditionalCheckFailed on our item), or when its owner's lease has expired (the owner died); it is given
back on failure, and if that fails too the lease expires, so a redelivery always finishes the work.

IAM actions this module calls: `iam_permissions()` (the Terraform module grants exactly these).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pyctl.core.checkpoint import format_time, parse_time, time_lost
from pyctl.core.interruptions import (
    CAPACITY_ERRORS,
    Action,
    Decision,
    Ec2Event,
    InstanceFacts,
    JobState,
    JobTemplate,
    Market,
    MarketChoice,
    Placement,
    RecoveryPolicy,
    UnsupportedEvent,
    choose_market,
    decide,
    parse_event,
    placement_order,
    replacement_key,
)

log = logging.getLogger(__name__)

# The IAM actions of each verb of `Recovery` (Cloud Custodian style: declared next to the code, compared
# with the module's policy by tests/recovery/test_module_and_package.py).
DESCRIBE_PERMISSIONS = ("ec2:DescribeInstances", "ec2:DescribeSubnets")  # instance_facts, subnet_zones
LAUNCH_PERMISSIONS = ("ec2:RunInstances", "ec2:CreateTags")  # run_instance (tags given at launch)
LEDGER_PERMISSIONS = (  # _claim, _release, job_state, _update, _fallback_rows: the DynamoDB ledger
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
)
# set_group_on_demand_percentage: the fallback of the env's spot pools (UpdateAutoScalingGroup is granted on
# those groups only, conditioned on their pyctl:env tag; Describe has no resource-level permissions).
FALLBACK_PERMISSIONS = ("autoscaling:DescribeAutoScalingGroups", "autoscaling:UpdateAutoScalingGroup")
CHECKPOINT_PERMISSIONS = ("s3:ListBucket", "s3:GetObject")  # last_checkpoint


def iam_permissions() -> dict[str, tuple[str, ...]]:
    """Every IAM action the recovery calls, per verb."""
    return {
        "describe": DESCRIBE_PERMISSIONS,
        "launch": LAUNCH_PERMISSIONS,
        "ledger": LEDGER_PERMISSIONS,
        "checkpoints": CHECKPOINT_PERMISSIONS,
        "fallback": FALLBACK_PERMISSIONS,
    }


IAM_ACTIONS = tuple(a for verb in iam_permissions().values() for a in verb)
JOB_TAG = "pyctl:job"
REPLACES_TAG = "pyctl:replaces"
ASG_TAG = "aws:autoscaling:groupName"
ENV_TAG = "pyctl:env"
EVENT_TTL = timedelta(days=7)
# A claim's lease: longer than the function's timeout (60 s), so a live owner never loses its claim,
# shorter than Lambda's second asynchronous retry, so a dead owner's work is finished by a redelivery.
LEASE = timedelta(seconds=90)
SCHEDULED = "Scheduled Event"  # EventBridge schedule: the pass that ends on-demand periods of groups
LAUNCH_UNSUCCESSFUL = "EC2 Instance Launch Unsuccessful"  # aws.autoscaling
# Markers of "no spot capacity" in an Auto Scaling launch failure's StatusMessage.
GROUP_CAPACITY_MARKERS = ("InsufficientInstanceCapacity", "no Spot capacity", "There is no Spot capacity")
_KEEP_INTERRUPTION_TIMES = 50


def table_name(env: str) -> str:
    """The recovery table of an env (the Terraform stack names it the same way)."""
    return f"pyctl-{env}-spot-recovery"


def launch_interface(template: JobTemplate, placement: Placement) -> dict[str, Any]:
    """The primary network interface of a replacement: the pool's launch template defines one
    (infra/modules/aws-gpu-pool `network_interfaces`: device 0, no public IP, deleted with the instance,
    the pool's security group), so the subnet goes on the interface, never top-level. RunInstances
    `SubnetId`/`SecurityGroupIds`: "If you specify a network interface, you must specify any subnets
    [security groups] as part of the network interface instead"; `DeviceIndex` is required
    (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RunInstances.html,
    API_InstanceNetworkInterfaceSpecification.html). The template's settings are repeated so the
    interface is the same whether EC2 merges it with the template's or replaces it."""
    interface: dict[str, Any] = {
        "DeviceIndex": 0,
        "SubnetId": placement.subnet_id,
        "AssociatePublicIpAddress": False,
        "DeleteOnTermination": True,
    }
    if template.security_group_ids:
        interface["Groups"] = list(template.security_group_ids)
    return interface


@dataclass(frozen=True)
class GroupSettings:
    """A spot pool's Auto Scaling group with `spot.fallback: on_demand`: the mix it goes back to."""

    on_demand_percentage_above_base: int = 0


@dataclass(frozen=True)
class RecoveryConfig:
    """The Lambda's settings, from its environment (written by the Terraform module)."""

    table: str
    policy: RecoveryPolicy = field(default_factory=RecoveryPolicy)
    jobs: Mapping[str, JobTemplate] = field(default_factory=dict)
    checkpoint_bucket: str = ""
    checkpoint_prefix: str = ""
    env: str = ""  # the groups it may change carry tag pyctl:env=<env>
    groups: Mapping[str, GroupSettings] = field(default_factory=dict)
    lease: timedelta = LEASE

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RecoveryConfig:
        doc = json.loads(environ.get("PYCTL_RECOVERY_CONFIG", "{}"))
        policy = doc.get("policy", {})
        jobs = {
            name: JobTemplate(
                launch_template_id=job["launch_template_id"],
                instance_types=tuple(job.get("instance_types", [])),
                subnet_ids=tuple(job.get("subnet_ids", [])),
                security_group_ids=tuple(job.get("security_group_ids", [])),
            )
            for name, job in doc.get("jobs", {}).items()
        }
        return cls(
            table=environ["PYCTL_RECOVERY_TABLE"],
            policy=RecoveryPolicy(
                max_interruptions=int(policy.get("max_interruptions", 3)),
                window=timedelta(hours=float(policy.get("window_hours", 6))),
                cooldown=timedelta(hours=float(policy.get("cooldown_hours", 2))),
            ),
            jobs=jobs,
            checkpoint_bucket=doc.get("checkpoint_bucket", ""),
            checkpoint_prefix=doc.get("checkpoint_prefix", ""),
            env=str(doc.get("env", "")),
            groups={
                name: GroupSettings(int(group.get("on_demand_percentage_above_base", 0)))
                for name, group in doc.get("groups", {}).items()
            },
        )


class Duplicate(Exception):
    """A conditional write found its key taken by work that is already finished."""


class InProgress(Exception):
    """Another invocation holds a live claim on this work. Raised, so that the delivery is retried later
    (Lambda's asynchronous retries) and, if the other invocation died, finishes the work once its lease
    has expired; a delivery that never gets through reaches the dead-letter queue."""


# RunInstances errors after which the request was not applied and may be sent again (the same ClientToken).
_RETRY_CODES = frozenset(
    {"RequestLimitExceeded", "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable"}
)
_LAUNCH_ATTEMPTS = 4
CLAIMED, DONE, LAUNCHED = "claimed", "done", "launched"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _s(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name, {})
    return str(value.get("S", "")) if isinstance(value, Mapping) else ""


def _ambiguous_errors() -> tuple[type[BaseException], ...]:
    """botocore errors that leave open whether the request was applied: a dropped connection, a lost or
    cut answer (ResponseParserError is a plain Exception, not a BotoCoreError)."""
    from botocore.exceptions import BotoCoreError
    from botocore.parsers import ResponseParserError

    return (BotoCoreError, ResponseParserError)


def launch_token(replaces: str, placement: Placement, market: Market) -> str:
    """RunInstances ClientToken (at most 64 ASCII characters): the same interrupted instance, placement
    and market give the same token, so a retried request returns the instance the first one launched
    instead of a second one (EC2 "Ensuring idempotency"; a different request under one token is
    `IdempotentParameterMismatch`, hence the placement and market in it)."""
    raw = f"{replaces}|{placement.instance_type}|{placement.subnet_id}|{market.value}"
    return "pyctl-" + hashlib.sha256(raw.encode()).hexdigest()[:58]


@dataclass
class Recovery:
    """One event's I/O, over clients built by the caller (Lambda or tests).

    `ec2_launch` sends RunInstances (default: `ec2`): the Lambda gives it a client without botocore
    retries, because the retry loop here looks for the instance a lost answer launched before it
    sends the request again. `clock` is the wall clock of claim leases (event times are the policy's).
    """

    config: RecoveryConfig
    ec2: Any
    dynamodb: Any
    s3: Any = None
    autoscaling: Any = None
    ec2_launch: Any = None
    clock: Callable[[], datetime] = _utcnow
    sleep: Callable[[float], None] = time.sleep

    # --- DynamoDB: claims with an owner and a lease ------------------------------------------------------

    def _key(self, pk: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def _claim(self, pk: str, sk: str, invocation: str, event_id: str, ttl: bool) -> dict[str, Any] | None:
        """Take the claim on one piece of work. None: it is ours now (new, taken over from an invocation
        whose lease expired, or ours already: the answer to our own write was lost and botocore's retry
        met our item). The existing item: the work is finished. InProgress: someone else holds a live lease.
        """
        now = self.clock()
        item: dict[str, Any] = {
            **self._key(pk, sk),
            "status": {"S": CLAIMED},
            "owner": {"S": invocation},
            "event_id": {"S": event_id},
            "claimed_at": {"S": format_time(now)},
            "lease_until": {"N": str(int((now + self.config.lease).timestamp()))},
        }
        if ttl:
            item["expires_at"] = {"N": str(int((now + EVENT_TTL).timestamp()))}
        try:
            self.dynamodb.put_item(
                TableName=self.config.table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR (#status = :claimed AND lease_until < :now)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":claimed": {"S": CLAIMED},
                    ":now": {"N": str(int(now.timestamp()))},
                },
            )
            return None
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            pass
        existing = (
            self.dynamodb.get_item(
                TableName=self.config.table, Key=self._key(pk, sk), ConsistentRead=True
            ).get("Item")
            or {}
        )
        if _s(existing, "owner") == invocation:
            return None
        if not existing or _s(existing, "status") == CLAIMED:
            # Claimed by another invocation (or released just now): let the retry see it again.
            raise InProgress(f"{pk}: being handled by {_s(existing, 'owner') or 'another invocation'}")
        return existing  # done (items from before owners were recorded have no status: done)

    def _finish(self, pk: str, sk: str, invocation: str, status: str, sets: Mapping[str, Any]) -> None:
        """Mark our claim's work done (idempotent: a retried write meets its own owner)."""
        values = {
            ":status": {"S": status},
            ":me": {"S": invocation},
            **{f":v{i}": v for i, v in enumerate(sets.values())},
        }
        names = {"#status": "status", **{f"#a{i}": name for i, name in enumerate(sets)}}
        expression = "SET #status = :status" + "".join(f", #a{i} = :v{i}" for i in range(len(sets)))
        try:
            self.dynamodb.update_item(
                TableName=self.config.table,
                Key=self._key(pk, sk),
                UpdateExpression=expression + " REMOVE lease_until",
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={**names, "#owner": "owner"},
                ExpressionAttributeValues=values,
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            log.warning(json.dumps({"claim": pk, "warning": "claim taken over before it was finished"}))

    def _release(self, pk: str, sk: str, invocation: str) -> None:
        """Give our claim back so a redelivery can do the work; if even that fails, the lease expires."""
        try:
            self.dynamodb.delete_item(
                TableName=self.config.table,
                Key=self._key(pk, sk),
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": invocation}},
            )
        except Exception as exc:  # noqa: BLE001 - the original error is re-raised by the caller
            log.warning(json.dumps({"claim": pk, "release_failed": type(exc).__name__, "lease": "expires"}))

    def job_state(self, job: str) -> JobState:
        item = self.dynamodb.get_item(
            TableName=self.config.table,
            Key={"pk": {"S": f"JOB#{job}"}, "sk": {"S": "STATE"}},
            ConsistentRead=True,
        ).get("Item")
        return _job_state(item or {})

    def _update_job(self, job: str, sets: Mapping[str, Any]) -> None:
        self._update({"pk": {"S": f"JOB#{job}"}, "sk": {"S": "STATE"}}, {**sets, "job": {"S": job}})

    def mark_done(self, job: str, done: bool = True) -> None:
        self._update_job(job, {"done": {"BOOL": done}})

    def _count_interruption(self, job: str, instance_id: str, at: datetime) -> JobState:
        """Count one interruption of `instance_id` exactly once, atomically: the time is appended and the
        instance added to the job's `counted` set in one conditional UpdateItem, so concurrent
        interruptions of one job all count, and a retry (a lost answer) or a redelivery counts nothing
        twice. Returns the job's state after the write."""
        key = {"pk": {"S": f"JOB#{job}"}, "sk": {"S": "STATE"}}
        try:
            item = self.dynamodb.update_item(
                TableName=self.config.table,
                Key=key,
                UpdateExpression=(
                    "SET interruptions = list_append(if_not_exists(interruptions, :empty), :at), "
                    "last_interruption = :time, #job = :job ADD counted :ids"
                ),
                ConditionExpression="attribute_not_exists(counted) OR NOT contains(counted, :id)",
                ExpressionAttributeNames={"#job": "job"},
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":at": {"L": [{"S": format_time(at)}]},
                    ":time": {"S": format_time(at)},
                    ":job": {"S": job},
                    ":ids": {"SS": [instance_id]},
                    ":id": {"S": instance_id},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return self.job_state(job)  # counted already (our own retried write, or an earlier delivery)
        times = item.get("interruptions", {}).get("L", [])
        if len(times) > _KEEP_INTERRUPTION_TIMES:
            # Trim the oldest, only if nobody appended meanwhile (else the next count trims).
            drop = len(times) - _KEEP_INTERRUPTION_TIMES
            with contextlib.suppress(self.dynamodb.exceptions.ConditionalCheckFailedException):
                self.dynamodb.update_item(
                    TableName=self.config.table,
                    Key=key,
                    UpdateExpression="REMOVE " + ", ".join(f"interruptions[{i}]" for i in range(drop)),
                    ConditionExpression="size(interruptions) = :n",
                    ExpressionAttributeValues={":n": {"N": str(len(times))}},
                )
        return _job_state(item)

    # --- EC2 ------------------------------------------------------------------------------------------

    def instance_facts(self, instance_id: str) -> InstanceFacts | None:
        try:
            reservations = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except self.ec2.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            raise
        instances = [i for r in reservations for i in r["Instances"]]
        if not instances:
            return None
        return _facts(instances[0])

    def subnet_zones(self, subnet_ids: tuple[str, ...]) -> dict[str, str]:
        if not subnet_ids:
            return {}
        subnets = self.ec2.describe_subnets(SubnetIds=list(subnet_ids))["Subnets"]
        return {s["SubnetId"]: s["AvailabilityZone"] for s in subnets}

    def live_replacement(self, replaces: str) -> InstanceFacts | None:
        """A pending or running instance already launched for `replaces` (tag pyctl:replaces): the launch
        of an invocation that died, or whose answer was lost, before it recorded the instance."""
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[
                {"Name": f"tag:{REPLACES_TAG}", "Values": [replaces]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for inst in reservation["Instances"]:
                    return _facts(inst)
        return None

    def run_instance(
        self, template: JobTemplate, placement: Placement, market: Market, job: str, replaces: str
    ) -> str:
        """One replacement launch, safe to repeat: a ClientToken per (instance, placement, market); after an
        answer that leaves open whether EC2 launched (a dropped connection, a lost or unreadable answer,
        a 5xx), the instance tagged for `replaces` is looked up before the request is sent again."""
        args: dict[str, Any] = {
            "LaunchTemplate": {"LaunchTemplateId": template.launch_template_id, "Version": "$Latest"},
            "MinCount": 1,
            "MaxCount": 1,
            "InstanceType": placement.instance_type,
            "NetworkInterfaces": [launch_interface(template, placement)],
            "ClientToken": launch_token(replaces, placement, market),
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": JOB_TAG, "Value": job}, {"Key": REPLACES_TAG, "Value": replaces}],
                }
            ],
        }
        if market is Market.SPOT:
            args["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
        ec2 = self.ec2_launch or self.ec2
        ambiguous = _ambiguous_errors()
        for attempt in range(_LAUNCH_ATTEMPTS):
            try:
                instance_id: str = ec2.run_instances(**args)["Instances"][0]["InstanceId"]
                return instance_id
            except self.ec2.exceptions.ClientError as exc:
                if exc.response["Error"]["Code"] not in _RETRY_CODES or attempt == _LAUNCH_ATTEMPTS - 1:
                    raise
            except ambiguous:
                if attempt == _LAUNCH_ATTEMPTS - 1:
                    raise
            found = self.live_replacement(replaces)
            if found is not None:
                return found.instance_id
            self.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- Auto Scaling: the pool's spot/on-demand mix -------------------------------------------------------

    def set_group_on_demand_percentage(self, group: str, percentage: int) -> bool:
        """Set the group's OnDemandPercentageAboveBaseCapacity (100: on-demand only; the base capacity is
        left alone). UpdateAutoScalingGroup changes only what the request names, and a MixedInstancesPolicy
        in an update needs no LaunchTemplate (API reference, MixedInstancesPolicy.LaunchTemplate: required
        when creating a policy). The request carries the group's whole InstancesDistribution (read first,
        one number changed) and no launch template on purpose: an update "using a launch template" makes
        Auto Scaling check the caller's ec2:RunInstances and iam:PassRole on that template (EC2 Auto Scaling
        User Guide, "Control Amazon EC2 launch template usage in Auto Scaling groups"), which this function
        is not granted for pool templates. Refuses groups outside the env (tag pyctl:env). Returns whether
        anything changed."""
        if self.autoscaling is None:
            raise RuntimeError("no Auto Scaling client")
        groups = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
            "AutoScalingGroups"
        ]
        if not groups:
            raise RuntimeError(f"Auto Scaling group {group} not found")
        found = groups[0]
        tags = {t["Key"]: t["Value"] for t in found.get("Tags", [])}
        if self.config.env and tags.get(ENV_TAG) != self.config.env:
            raise RuntimeError(f"Auto Scaling group {group} is not in env {self.config.env} (tag {ENV_TAG})")
        policy = found.get("MixedInstancesPolicy")
        if not policy:
            raise RuntimeError(f"Auto Scaling group {group} has no mixed instances policy")
        distribution = dict(policy.get("InstancesDistribution", {}))
        if distribution.get("OnDemandPercentageAboveBaseCapacity") == percentage:
            return False
        distribution["OnDemandPercentageAboveBaseCapacity"] = percentage
        self.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=group, MixedInstancesPolicy={"InstancesDistribution": distribution}
        )
        return True

    def shift_group(self, group: str, until: datetime, now: datetime, reason: str) -> dict[str, Any]:
        """The pool's group to on-demand until `until` (repeatable: the group is set first, then recorded)."""
        self.set_group_on_demand_percentage(group, 100)
        self.dynamodb.update_item(
            TableName=self.config.table,
            Key=self._key("FALLBACK", f"ASG#{group}"),
            UpdateExpression=(
                "SET #mode = :od, on_demand_until = :until, reason = :reason, #group = :group, "
                "on_demand_since = if_not_exists(on_demand_since, :now)"
            ),
            ExpressionAttributeNames={"#mode": "mode", "#group": "group"},
            ExpressionAttributeValues={
                ":od": {"S": Market.ON_DEMAND.value},
                ":until": {"S": format_time(until)},
                ":reason": {"S": reason},
                ":group": {"S": group},
                ":now": {"S": format_time(now)},
            },
        )
        return {"group": group, "group_market": Market.ON_DEMAND.value, "group_until": format_time(until)}

    def restore_groups(self, now: datetime) -> dict[str, Any]:
        """The scheduled pass: every group whose on-demand period is over goes back to its configured mix.
        On a schedule, not on the next event: an on-demand group is not interrupted, so no event may come."""
        restored, kept = [], []
        for item in self._fallback_rows():
            group, until = _s(item, "group"), _s(item, "on_demand_until")
            if _s(item, "mode") != Market.ON_DEMAND.value or not until:
                continue
            if parse_time(until) > now:
                kept.append(group)
                continue
            settings = self.config.groups.get(group)
            if settings is None:
                continue
            self.set_group_on_demand_percentage(group, settings.on_demand_percentage_above_base)
            try:
                self.dynamodb.update_item(
                    TableName=self.config.table,
                    Key=self._key("FALLBACK", f"ASG#{group}"),
                    UpdateExpression="SET #mode = :spot, spot_since = :now REMOVE on_demand_until, on_demand_since",
                    ConditionExpression="on_demand_until = :seen",
                    ExpressionAttributeNames={"#mode": "mode"},
                    ExpressionAttributeValues={
                        ":spot": {"S": Market.SPOT.value},
                        ":now": {"S": format_time(now)},
                        ":seen": {"S": until},
                    },
                )
            except self.dynamodb.exceptions.ConditionalCheckFailedException:
                # A new fallback came in meanwhile: on-demand again.
                self.set_group_on_demand_percentage(group, 100)
                kept.append(group)
                continue
            restored.append(group)
        return {"action": "restore-groups", "restored": restored, "on_demand": kept}

    def _fallback_rows(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in self.dynamodb.get_paginator("query").paginate(
            TableName=self.config.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "FALLBACK"}},
            ConsistentRead=True,
        ):
            items.extend(page.get("Items", []))
        return items

    # --- checkpoints ------------------------------------------------------------------------------------

    def last_checkpoint(self, job: str) -> tuple[int, datetime] | None:
        if not self.config.checkpoint_bucket or self.s3 is None:
            return None
        from pyctl.clouds.aws.storage import S3Store
        from pyctl.core.checkpoint_store import newest_complete

        store = S3Store(self.config.checkpoint_bucket, self.config.checkpoint_prefix, client=self.s3)
        manifest = newest_complete(store, job)
        return (manifest.step, manifest.time) if manifest else None

    # --- the event ----------------------------------------------------------------------------------------

    def handle(self, raw_event: Mapping[str, Any], invocation: str | None = None) -> dict[str, Any]:
        """Handle one EventBridge event; return the decision as one structured log record. `invocation`
        (the Lambda request id) owns the claims this delivery takes. Raises when the work could not be
        done (InProgress included), so the delivery is retried and in the end reaches the dead-letter queue.
        """
        invocation = invocation or uuid.uuid4().hex
        if raw_event.get("source") == "aws.events" and raw_event.get("detail-type") == SCHEDULED:
            return self.restore_groups(self.clock())
        if raw_event.get("source") == "aws.autoscaling":
            return self._handle_group_event(raw_event, invocation)
        try:
            event = parse_event(raw_event)
        except UnsupportedEvent as exc:
            return {"action": "ignore", "reason": str(exc)}
        record: dict[str, Any] = {"event_id": event.event_id, "instance_id": event.instance_id}
        if self._claim(event.idempotency_key, "EVENT", invocation, event.event_id, ttl=True) is not None:
            return {**record, "action": "duplicate", "reason": "event already handled"}
        try:
            record.update(self._handle_claimed(event, invocation))
        except Exception:
            self._release(event.idempotency_key, "EVENT", invocation)  # the retry (or the DLQ) sees it again
            raise
        self._finish(event.idempotency_key, "EVENT", invocation, DONE, {})
        return record

    def _handle_group_event(self, raw: Mapping[str, Any], invocation: str) -> dict[str, Any]:
        """`EC2 Instance Launch Unsuccessful` of a pool's group for lack of spot capacity: on-demand."""
        detail = raw.get("detail")
        if raw.get("detail-type") != LAUNCH_UNSUCCESSFUL or not isinstance(detail, Mapping):
            return {
                "action": "ignore",
                "reason": f"unsupported event aws.autoscaling / {raw.get('detail-type')!r}",
            }
        group = str(detail.get("AutoScalingGroupName", ""))
        message = str(detail.get("StatusMessage", ""))
        record: dict[str, Any] = {"event_id": raw.get("id"), "group": group}
        if group not in self.config.groups:
            return {
                **record,
                "action": "ignore",
                "reason": "not a spot pool with on-demand fallback in this env",
            }
        if not any(marker in message for marker in GROUP_CAPACITY_MARKERS):
            return {**record, "action": "ignore", "reason": "launch failure not for lack of spot capacity"}
        if not isinstance(raw.get("id"), str) or not isinstance(raw.get("time"), str):
            return {**record, "action": "ignore", "reason": "event has no id or time"}
        key = f"EVENT#{raw['id']}#{group}"
        if self._claim(key, "EVENT", invocation, str(raw["id"]), ttl=True) is not None:
            return {**record, "action": "duplicate", "reason": "event already handled"}
        try:
            now = parse_time(str(raw["time"]))
            choice = choose_market(JobState(), self.config.policy, now, capacity_error=True)
            assert choice.on_demand_until is not None
            record.update(self.shift_group(group, choice.on_demand_until, now, choice.reason))
        except Exception:
            self._release(key, "EVENT", invocation)
            raise
        self._finish(key, "EVENT", invocation, DONE, {})
        return {**record, "action": "fallback", "reason": choice.reason}

    def _handle_claimed(self, event: Ec2Event, invocation: str) -> dict[str, Any]:
        facts = self.instance_facts(event.instance_id)
        job = facts.job if facts else None
        state = self.job_state(job) if job else None
        template = self.config.jobs.get(job) if job else None
        decision = decide(event, facts, state, standalone=template is not None)
        out: dict[str, Any] = {"job": job, "action": decision.action.value, "reason": decision.reason}
        if facts is None or job is None or state is None or decision.action is Action.IGNORE:
            return out
        if decision.action is Action.RECORD_REBALANCE:
            self._update_job(job, {"last_rebalance": {"S": format_time(event.time)}})
            return out
        checkpoint = self.last_checkpoint(job)
        if checkpoint is not None:
            out["checkpoint_step"] = checkpoint[0]
        self._record_interruption(event, facts, checkpoint, decision, invocation)
        if decision.action is Action.RECORD_INTERRUPTION:
            state = self._count_interruption(job, facts.instance_id, event.time)
            if facts.asg_name is not None and facts.asg_name in self.config.groups:
                out.update(self._group_fallback(job, facts.asg_name, state, event.time))
        if decision.replace and template is not None:
            out.update(
                self.ensure_replacement(job, template, facts, state, event.time, invocation, event.event_id)
            )
        return out

    def _group_fallback(self, job: str, group: str, state: JobState, now: datetime) -> dict[str, Any]:
        choice = choose_market(state, self.config.policy, now)
        if choice.market is Market.SPOT or choice.on_demand_until is None:
            return {"group": group, "group_market": Market.SPOT.value, "market_reason": choice.reason}
        out = self.shift_group(group, choice.on_demand_until, now, choice.reason)
        self._set_job_market(job, choice, now)
        return {**out, "market_reason": choice.reason}

    def _record_interruption(
        self,
        event: Ec2Event,
        facts: InstanceFacts,
        checkpoint: tuple[int, datetime] | None,
        decision: Decision,
        invocation: str,
    ) -> None:
        """Write or refresh the INT#<instance> row (its first writer's event and invocation on it)."""
        assert facts.job is not None
        key = {"pk": {"S": f"JOB#{facts.job}"}, "sk": {"S": f"INT#{facts.instance_id}"}}
        sets: dict[str, Any] = {"updated_at": {"S": format_time(event.time)}}
        if checkpoint is not None:
            sets["checkpoint_step"] = {"N": str(checkpoint[0])}
            sets["checkpoint_time"] = {"S": format_time(checkpoint[1])}
            self._update_job(facts.job, {"last_checkpoint_step": {"N": str(checkpoint[0])}})
        if decision.action is Action.UPDATE_INTERRUPTION:
            # Not found: never interrupted by EC2 (a user or ASG stopped it), nothing to refresh.
            with contextlib.suppress(Duplicate):
                self._update(key, sets, condition="attribute_exists(pk)")
            return
        first = {
            "job": {"S": facts.job},
            "instance_id": {"S": facts.instance_id},
            "instance_type": {"S": facts.instance_type},
            "availability_zone": {"S": facts.availability_zone},
            "lifecycle": {"S": facts.lifecycle},
            "time": {"S": format_time(event.time)},
            "event_id": {"S": event.event_id},
            "owner": {"S": invocation},
        }
        try:
            self._update(key, {**first, **sets}, condition="attribute_not_exists(pk)")
        except Duplicate:
            self._update(key, sets)  # ours (a retried write) or an earlier delivery's: refresh only

    def _update(self, key: Mapping[str, Any], sets: Mapping[str, Any], condition: str | None = None) -> None:
        names = {f"#a{i}": name for i, name in enumerate(sets)}
        values = {f":v{i}": value for i, value in enumerate(sets.values())}
        args: dict[str, Any] = {
            "TableName": self.config.table,
            "Key": dict(key),
            "UpdateExpression": "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(sets))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if condition:
            args["ConditionExpression"] = condition
        try:
            self.dynamodb.update_item(**args)
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            raise Duplicate(str(key)) from None

    def ensure_replacement(
        self,
        job: str,
        template: JobTemplate,
        facts: InstanceFacts,
        state: JobState,
        now: datetime,
        invocation: str,
        event_id: str,
    ) -> dict[str, Any]:
        """Launch one replacement per interrupted instance: spot in another AZ or type first; on-demand
        when the policy says so or no placement has spot capacity.
        """
        claim = replacement_key(facts.instance_id)
        done = self._claim(claim, "REPLACE", invocation, event_id, ttl=False)
        if done is not None:
            return {
                "replacement": None,
                "replacement_reason": "already launched for this instance",
                "existing_replacement": _s(done, "replacement_id") or None,
            }
        try:
            choice = choose_market(state, self.config.policy, now)
            adopted = self.live_replacement(facts.instance_id)
            if adopted is not None:
                # Launched by an invocation that died before recording it (or whose answer was lost).
                market = Market.SPOT if adopted.lifecycle == "spot" else Market.ON_DEMAND
                if market is not choice.market:
                    choice = choose_market(
                        state, self.config.policy, now, capacity_error=market is Market.ON_DEMAND
                    )
                launched = (
                    adopted.instance_id,
                    Placement(adopted.instance_type, "", adopted.availability_zone),
                )
            else:
                placements = placement_order(
                    facts, template.instance_types, self.subnet_zones(template.subnet_ids)
                )
                if not placements:
                    placements = [Placement(facts.instance_type, "", facts.availability_zone)]
                found = self._launch_first(job, template, placements, choice.market, facts.instance_id)
                if found is None:
                    choice = choose_market(state, self.config.policy, now, capacity_error=True)
                    found = self._launch_first(job, template, placements, choice.market, facts.instance_id)
                if found is None:
                    raise RuntimeError(f"no placement had capacity for job {job}")
                launched = found
            instance_id, placement = launched
            self._record_replacement(job, facts.instance_id, instance_id, choice, now)
        except Exception:
            self._release(claim, "REPLACE", invocation)
            raise
        self._finish(claim, "REPLACE", invocation, LAUNCHED, {"replacement_id": {"S": instance_id}})
        return {
            "replacement": instance_id,
            "market": choice.market.value,
            "market_reason": choice.reason,
            "instance_type": placement.instance_type,
            "availability_zone": placement.availability_zone,
        }

    def _launch_first(
        self, job: str, template: JobTemplate, placements: list[Placement], market: Market, replaces: str
    ) -> tuple[str, Placement] | None:
        """Try placements in order; None when every one failed for lack of capacity."""
        for placement in placements:
            try:
                return self.run_instance(template, placement, market, job, replaces), placement
            except self.ec2.exceptions.ClientError as exc:
                code = exc.response["Error"]["Code"]
                if code not in CAPACITY_ERRORS:
                    raise
                log.info(
                    json.dumps(
                        {"job": job, "placement": placement.__dict__, "market": market.value, "error": code}
                    )
                )
        return None

    def _set_job_market(self, job: str, choice: MarketChoice, now: datetime) -> None:
        """The job's market, and since and until when it is on-demand."""
        key = {"pk": {"S": f"JOB#{job}"}, "sk": {"S": "STATE"}}
        if choice.market is Market.ON_DEMAND and choice.on_demand_until is not None:
            self.dynamodb.update_item(
                TableName=self.config.table,
                Key=key,
                UpdateExpression=(
                    "SET market = :m, on_demand_until = :until, #job = :job, "
                    "on_demand_since = if_not_exists(on_demand_since, :now)"
                ),
                ExpressionAttributeNames={"#job": "job"},
                ExpressionAttributeValues={
                    ":m": {"S": choice.market.value},
                    ":until": {"S": format_time(choice.on_demand_until)},
                    ":job": {"S": job},
                    ":now": {"S": format_time(now)},
                },
            )
        else:
            self.dynamodb.update_item(
                TableName=self.config.table,
                Key=key,
                UpdateExpression="SET market = :m, on_demand_until = :null, #job = :job REMOVE on_demand_since",
                ExpressionAttributeNames={"#job": "job"},
                ExpressionAttributeValues={
                    ":m": {"S": choice.market.value},
                    ":null": {"NULL": True},
                    ":job": {"S": job},
                },
            )

    def _record_replacement(
        self, job: str, interrupted: str, replacement: str, choice: MarketChoice, now: datetime
    ) -> None:
        self._update(
            {"pk": {"S": f"JOB#{job}"}, "sk": {"S": f"INT#{interrupted}"}},
            {"replacement_id": {"S": replacement}, "market": {"S": choice.market.value}},
        )
        self._set_job_market(job, choice, now)
        self._update_job(job, {"last_instance": {"S": replacement}})


def _job_state(item: Mapping[str, Any]) -> JobState:
    until = item.get("on_demand_until", {}).get("S")
    return JobState(
        done=item.get("done", {}).get("BOOL", False),
        interruptions=tuple(sorted(parse_time(v["S"]) for v in item.get("interruptions", {}).get("L", []))),
        on_demand_until=parse_time(until) if until else None,
    )


def _facts(inst: Mapping[str, Any]) -> InstanceFacts:
    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
    return InstanceFacts(
        instance_id=inst["InstanceId"],
        job=tags.get(JOB_TAG),
        instance_type=inst["InstanceType"],
        availability_zone=inst["Placement"]["AvailabilityZone"],
        lifecycle=inst.get("InstanceLifecycle", "on-demand"),
        asg_name=tags.get(ASG_TAG),
        state_reason_code=inst.get("StateReason", {}).get("Code", ""),
    )


# --- pyctl jobs status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobStatus:
    job: str
    done: bool
    market: str
    interruptions: int
    last_checkpoint_step: int | None
    time_lost: timedelta | None  # None: an interruption hit the job before any complete checkpoint
    last_instance: str
    on_demand_since: datetime | None = None  # set while the job's replacements (or group) are on-demand
    on_demand_until: datetime | None = None


@dataclass(frozen=True)
class GroupStatus:
    """A spot pool's Auto Scaling group and its fallback."""

    group: str
    market: str
    on_demand_since: datetime | None
    on_demand_until: datetime | None
    reason: str


def _optional_time(item: Mapping[str, Any], name: str) -> datetime | None:
    text = _s(item, name)
    return parse_time(text) if text else None


def job_recorded(dynamodb: Any, table: str, job: str) -> bool:
    """Whether the table has any record of `job` (its state or an interruption)."""
    found = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"JOB#{job}"}},
        Limit=1,
    )
    return bool(found.get("Items"))


def scan_table(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        items.extend(page.get("Items", []))
    return items


def group_statuses(
    dynamodb: Any, table: str, now: datetime | None = None, items: list[dict[str, Any]] | None = None
) -> list[GroupStatus]:
    """The fallback state of every spot pool group the recovery has shifted at least once."""
    now = now or _utcnow()
    out = []
    for item in items if items is not None else scan_table(dynamodb, table):
        if item["pk"]["S"] != "FALLBACK":
            continue
        until = _optional_time(item, "on_demand_until")
        on_demand = _s(item, "mode") == Market.ON_DEMAND.value and until is not None
        out.append(
            GroupStatus(
                group=_s(item, "group"),
                # Until the scheduled pass has run, a period that is over still shows its end.
                market=Market.ON_DEMAND.value if on_demand else Market.SPOT.value,
                on_demand_since=_optional_time(item, "on_demand_since") if on_demand else None,
                on_demand_until=until if on_demand else None,
                reason=_s(item, "reason") if on_demand else "",
            )
        )
    return sorted(out, key=lambda g: g.group)


def job_statuses(
    dynamodb: Any, table: str, now: datetime | None = None, items: list[dict[str, Any]] | None = None
) -> list[JobStatus]:
    """Every job in the table with its interruptions and the estimated training time they cost."""
    now = now or _utcnow()
    items = items if items is not None else scan_table(dynamodb, table)
    jobs: dict[str, dict[str, Any]] = {}
    lost: dict[str, timedelta | None] = {}
    counts: dict[str, int] = {}
    for item in items:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if not pk.startswith("JOB#"):
            continue
        job = pk[4:]
        if sk == "STATE":
            jobs[job] = item
        elif sk.startswith("INT#"):
            counts[job] = counts.get(job, 0) + 1
            at = parse_time(item["time"]["S"])
            cp = item.get("checkpoint_time", {}).get("S")
            this = time_lost(at, parse_time(cp) if cp else None)
            so_far = lost.get(job, timedelta(0))
            lost[job] = None if this is None or so_far is None else so_far + this
    out = []
    for job in sorted(set(jobs) | set(counts)):
        state = jobs.get(job, {})
        step = state.get("last_checkpoint_step", {}).get("N")
        until = _optional_time(state, "on_demand_until")
        on_demand = until is not None and now < until
        out.append(
            JobStatus(
                job=job,
                done=state.get("done", {}).get("BOOL", False),
                # On-demand while the period runs; the next replacement after it is spot.
                market=Market.ON_DEMAND.value if on_demand else Market.SPOT.value,
                on_demand_since=_optional_time(state, "on_demand_since") if on_demand else None,
                on_demand_until=until if on_demand else None,
                interruptions=counts.get(job, 0),
                last_checkpoint_step=int(Decimal(step)) if step is not None else None,
                time_lost=lost.get(job, timedelta(0)),
                last_instance=state.get("last_instance", {}).get("S", ""),
            )
        )
    return out
