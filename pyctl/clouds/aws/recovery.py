"""Spot recovery I/O: the DynamoDB record (conditional writes make every side effect happen once),
DescribeInstances facts, and replacement launches from the job's launch template.

Table layout (one table, keys `pk`/`sk`):
  JOB#<job>            / STATE          the job: done, market, on_demand_until, interruption times, last checkpoint
  JOB#<job>            / INT#<instance> one interruption: instance type, AZ, time, checkpoint step, replacement
  EVENT#<id>#<inst>    / EVENT          delivery idempotency (expires after a week, DynamoDB TTL `expires_at`)
  REPLACE#<instance>   / REPLACE        launch idempotency for one interrupted instance

IAM actions this module calls (the Terraform module grants exactly these): ec2:DescribeInstances,
ec2:DescribeSubnets, ec2:RunInstances, ec2:CreateTags, dynamodb:GetItem, dynamodb:PutItem,
dynamodb:UpdateItem, dynamodb:DeleteItem, s3:ListBucket, s3:GetObject (checkpoint manifests).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
LEDGER_PERMISSIONS = (  # _claim, _release, job_state, _update: the DynamoDB ledger
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
CHECKPOINT_PERMISSIONS = ("s3:ListBucket", "s3:GetObject")  # last_checkpoint


def iam_permissions() -> dict[str, tuple[str, ...]]:
    """Every IAM action the recovery calls, per verb."""
    return {
        "describe": DESCRIBE_PERMISSIONS,
        "launch": LAUNCH_PERMISSIONS,
        "ledger": LEDGER_PERMISSIONS,
        "checkpoints": CHECKPOINT_PERMISSIONS,
    }


IAM_ACTIONS = tuple(a for verb in iam_permissions().values() for a in verb)
JOB_TAG = "pyctl:job"
REPLACES_TAG = "pyctl:replaces"
ASG_TAG = "aws:autoscaling:groupName"
EVENT_TTL = timedelta(days=7)
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
class RecoveryConfig:
    """The Lambda's settings, from its environment (written by the Terraform module)."""

    table: str
    policy: RecoveryPolicy = field(default_factory=RecoveryPolicy)
    jobs: Mapping[str, JobTemplate] = field(default_factory=dict)
    checkpoint_bucket: str = ""
    checkpoint_prefix: str = ""

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
        )


class Duplicate(Exception):
    """A conditional write found its key taken: the side effect already happened."""


@dataclass
class Recovery:
    """One event's I/O, over clients built by the caller (Lambda or tests)."""

    config: RecoveryConfig
    ec2: Any
    dynamodb: Any
    s3: Any = None

    # --- DynamoDB ------------------------------------------------------------------------------------

    def _claim(self, pk: str, sk: str, now: datetime, ttl: bool) -> None:
        item: dict[str, Any] = {"pk": {"S": pk}, "sk": {"S": sk}, "claimed_at": {"S": format_time(now)}}
        if ttl:
            item["expires_at"] = {"N": str(int((now + EVENT_TTL).timestamp()))}
        try:
            self.dynamodb.put_item(
                TableName=self.config.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            raise Duplicate(pk) from None

    def _release(self, pk: str, sk: str) -> None:
        self.dynamodb.delete_item(TableName=self.config.table, Key={"pk": {"S": pk}, "sk": {"S": sk}})

    def job_state(self, job: str) -> JobState:
        item = self.dynamodb.get_item(
            TableName=self.config.table,
            Key={"pk": {"S": f"JOB#{job}"}, "sk": {"S": "STATE"}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return JobState()
        until = item.get("on_demand_until", {}).get("S")
        return JobState(
            done=item.get("done", {}).get("BOOL", False),
            interruptions=tuple(parse_time(v["S"]) for v in item.get("interruptions", {}).get("L", [])),
            on_demand_until=parse_time(until) if until else None,
        )

    def _update_job(self, job: str, sets: Mapping[str, Any]) -> None:
        self._update({"pk": {"S": f"JOB#{job}"}, "sk": {"S": "STATE"}}, {**sets, "job": {"S": job}})

    def mark_done(self, job: str, done: bool = True) -> None:
        self._update_job(job, {"done": {"BOOL": done}})

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
        inst = instances[0]
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        return InstanceFacts(
            instance_id=instance_id,
            job=tags.get(JOB_TAG),
            instance_type=inst["InstanceType"],
            availability_zone=inst["Placement"]["AvailabilityZone"],
            lifecycle=inst.get("InstanceLifecycle", "on-demand"),
            asg_name=tags.get(ASG_TAG),
            state_reason_code=inst.get("StateReason", {}).get("Code", ""),
        )

    def subnet_zones(self, subnet_ids: tuple[str, ...]) -> dict[str, str]:
        if not subnet_ids:
            return {}
        subnets = self.ec2.describe_subnets(SubnetIds=list(subnet_ids))["Subnets"]
        return {s["SubnetId"]: s["AvailabilityZone"] for s in subnets}

    def run_instance(
        self, template: JobTemplate, placement: Placement, market: Market, job: str, replaces: str
    ) -> str:
        args: dict[str, Any] = {
            "LaunchTemplate": {"LaunchTemplateId": template.launch_template_id, "Version": "$Latest"},
            "MinCount": 1,
            "MaxCount": 1,
            "InstanceType": placement.instance_type,
            "NetworkInterfaces": [launch_interface(template, placement)],
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
        instance_id: str = self.ec2.run_instances(**args)["Instances"][0]["InstanceId"]
        return instance_id

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

    def handle(self, raw_event: Mapping[str, Any]) -> dict[str, Any]:
        """Handle one EventBridge event; return the decision as one structured log record."""
        try:
            event = parse_event(raw_event)
        except UnsupportedEvent as exc:
            return {"action": "ignore", "reason": str(exc)}
        record: dict[str, Any] = {"event_id": event.event_id, "instance_id": event.instance_id}
        try:
            self._claim(event.idempotency_key, "EVENT", event.time, ttl=True)
        except Duplicate:
            return {**record, "action": "duplicate", "reason": "event already handled"}
        try:
            record.update(self._handle_claimed(event))
        except Exception:
            self._release(event.idempotency_key, "EVENT")  # let the retry (or the DLQ) see it again
            raise
        return record

    def _handle_claimed(self, event: Ec2Event) -> dict[str, Any]:
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
        is_new = self._record_interruption(event, facts, checkpoint, decision)
        if decision.action is Action.RECORD_INTERRUPTION and is_new:
            state = JobState(state.done, (*state.interruptions, event.time), state.on_demand_until)
            self._update_job(
                job,
                {
                    "interruptions": {
                        "L": [{"S": format_time(t)} for t in state.interruptions[-_KEEP_INTERRUPTION_TIMES:]]
                    },
                    "last_interruption": {"S": format_time(event.time)},
                },
            )
        if decision.replace and template is not None:
            out.update(self.ensure_replacement(job, template, facts, state, event.time))
        return out

    def _record_interruption(
        self,
        event: Ec2Event,
        facts: InstanceFacts,
        checkpoint: tuple[int, datetime] | None,
        decision: Decision,
    ) -> bool:
        """Write or refresh the INT#<instance> row; True when this instance's interruption is new."""
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
            return False
        first = {
            "job": {"S": facts.job},
            "instance_id": {"S": facts.instance_id},
            "instance_type": {"S": facts.instance_type},
            "availability_zone": {"S": facts.availability_zone},
            "lifecycle": {"S": facts.lifecycle},
            "time": {"S": format_time(event.time)},
            "event_id": {"S": event.event_id},
        }
        try:
            self._update(key, {**first, **sets}, condition="attribute_not_exists(pk)")
            return True
        except Duplicate:
            self._update(key, sets)
            return False

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
        self, job: str, template: JobTemplate, facts: InstanceFacts, state: JobState, now: datetime
    ) -> dict[str, Any]:
        """Launch one replacement per interrupted instance: spot in another AZ or type first; on-demand
        when the policy says so or no placement has spot capacity.
        """
        claim = replacement_key(facts.instance_id)
        try:
            self._claim(claim, "REPLACE", now, ttl=False)
        except Duplicate:
            return {"replacement": None, "replacement_reason": "already launched for this instance"}
        try:
            placements = placement_order(
                facts, template.instance_types, self.subnet_zones(template.subnet_ids)
            )
            if not placements:
                placements = [Placement(facts.instance_type, "", facts.availability_zone)]
            choice = choose_market(state, self.config.policy, now)
            launched = self._launch_first(job, template, placements, choice.market, facts.instance_id)
            if launched is None:
                choice = choose_market(state, self.config.policy, now, capacity_error=True)
                launched = self._launch_first(job, template, placements, choice.market, facts.instance_id)
            if launched is None:
                raise RuntimeError(f"no placement had capacity for job {job}")
        except Exception:
            self._release(claim, "REPLACE")
            raise
        instance_id, placement = launched
        self._record_replacement(job, facts.instance_id, instance_id, choice)
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

    def _record_replacement(self, job: str, interrupted: str, replacement: str, choice: MarketChoice) -> None:
        self._update(
            {"pk": {"S": replacement_key(interrupted)}, "sk": {"S": "REPLACE"}},
            {"replacement_id": {"S": replacement}},
        )
        self._update(
            {"pk": {"S": f"JOB#{job}"}, "sk": {"S": f"INT#{interrupted}"}},
            {"replacement_id": {"S": replacement}, "market": {"S": choice.market.value}},
        )
        sets: dict[str, Any] = {"market": {"S": choice.market.value}, "last_instance": {"S": replacement}}
        sets["on_demand_until"] = (
            {"S": format_time(choice.on_demand_until)} if choice.on_demand_until else {"NULL": True}
        )
        self._update_job(job, sets)


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


def job_recorded(dynamodb: Any, table: str, job: str) -> bool:
    """Whether the table has any record of `job` (its state or an interruption)."""
    found = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"JOB#{job}"}},
        Limit=1,
    )
    return bool(found.get("Items"))


def job_statuses(dynamodb: Any, table: str) -> list[JobStatus]:
    """Every job in the table with its interruptions and the estimated training time they cost."""
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        items.extend(page.get("Items", []))
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
        out.append(
            JobStatus(
                job=job,
                done=state.get("done", {}).get("BOOL", False),
                market=state.get("market", {}).get("S", "spot"),
                interruptions=counts.get(job, 0),
                last_checkpoint_step=int(Decimal(step)) if step is not None else None,
                time_lost=lost.get(job, timedelta(0)),
                last_instance=state.get("last_instance", {}).get("S", ""),
            )
        )
    return out
