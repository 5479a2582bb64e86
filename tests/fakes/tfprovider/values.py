"""Deterministic, realistically shaped values for what a real provider computes.

Fake values steer plan logic and our own validation blocks (`^arn:aws`, `^lt-`, `^projects/...`), so each id
and ARN has its type's real shape. The same resource (type + configuration) always gets the same values.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from . import cty
from .schema import Block

# resource type -> (id prefix for EC2-style ids, ARN resource part template)
_EC2_IDS: dict[str, tuple[str, str]] = {
    "aws_launch_template": ("lt-", "launch-template/{id}"),
    "aws_security_group": ("sg-", "security-group/{id}"),
    "aws_vpc_security_group_ingress_rule": ("sgr-", "security-group-rule/{id}"),
    "aws_vpc_security_group_egress_rule": ("sgr-", "security-group-rule/{id}"),
    "aws_ec2_capacity_reservation": ("cr-", "capacity-reservation/{id}"),
    "aws_ec2_capacity_block_reservation": ("cr-", "capacity-reservation/{id}"),
    "aws_instance": ("i-", "instance/{id}"),
    "aws_vpc": ("vpc-", "vpc/{id}"),
    "aws_subnet": ("subnet-", "subnet/{id}"),
    "aws_kms_key": ("", "key/{id}"),
}

# resource type -> ARN template (service, resource part); {name} is the resource's own name argument
_ARNS: dict[str, tuple[str, str]] = {
    "aws_iam_role": ("iam", "role/{path}{name}"),
    "aws_iam_policy": ("iam", "policy/{path}{name}"),
    "aws_iam_instance_profile": ("iam", "instance-profile/{path}{name}"),
    "aws_iam_openid_connect_provider": ("iam", "oidc-provider/{url_host}"),
    "aws_lambda_function": ("lambda", "function:{function_name}"),
    "aws_cloudwatch_log_group": ("logs", "log-group:{name}"),
    "aws_dynamodb_table": ("dynamodb", "table/{name}"),
    "aws_sqs_queue": ("sqs", "{name}"),
    "aws_sns_topic": ("sns", "{name}"),
    "aws_s3_bucket": ("s3", "{bucket}"),
    "aws_cloudwatch_event_rule": ("events", "rule/{name}"),
    "aws_scheduler_schedule": ("scheduler", "schedule/{group_name}/{name}"),
    "aws_autoscaling_group": ("autoscaling", "autoScalingGroup:{uuid}:autoScalingGroupName/{name}"),
    "aws_ssm_parameter": ("ssm", "parameter{name}"),
    "aws_secretsmanager_secret": ("secretsmanager", "secret:{name}-AbCdEf"),
    "aws_kms_alias": ("kms", "{name}"),
}
_GLOBAL_SERVICES = {"iam", "s3"}
_NO_ACCOUNT_SERVICES = {"s3"}

# resource type -> the id a real provider sets, from its own arguments
_NAMED_IDS: dict[str, str] = {
    "aws_iam_role": "{name}",
    "aws_iam_instance_profile": "{name}",
    "aws_iam_role_policy": "{role}:{name}",
    "aws_iam_role_policy_attachment": "{role}-{hex8}",
    "aws_lambda_function": "{function_name}",
    "aws_lambda_permission": "{statement_id}",
    "aws_cloudwatch_log_group": "{name}",
    "aws_dynamodb_table": "{name}",
    "aws_autoscaling_group": "{name}",
    "aws_cloudwatch_event_rule": "{name}",
    "aws_cloudwatch_event_target": "{rule}-{target_id}",
    "aws_scheduler_schedule": "{group_name}/{name}",
    "aws_s3_bucket": "{bucket}",
    "aws_sqs_queue": "https://sqs.{region}.amazonaws.com/{account}/{name}",
    "aws_sqs_queue_policy": "{queue_url}",
    "aws_sns_topic": "{arn}",
    "aws_sns_topic_subscription": "{arn}",
    "aws_ssm_parameter": "{name}",
    "google_storage_bucket": "{name}",
    "google_service_account": "projects/{project}/serviceAccounts/{email}",
    "google_compute_instance_template": "projects/{project}/global/instanceTemplates/{name}",
    "google_compute_region_instance_template": "projects/{project}/regions/{region}/instanceTemplates/{name}",
    "google_compute_instance_group_manager": "projects/{project}/zones/{zone}/instanceGroupManagers/{name}",
    "google_compute_region_instance_group_manager": "projects/{project}/regions/{region}/instanceGroupManagers/{name}",
    "google_compute_reservation": "projects/{project}/zones/{zone}/reservations/{name}",
    "google_cloudfunctions2_function": "projects/{project}/locations/{location}/functions/{name}",
    "google_cloud_scheduler_job": "projects/{project}/locations/{region}/jobs/{name}",
    "google_project_iam_custom_role": "projects/{project}/roles/{role_id}",
    "google_logging_project_sink": "projects/{project}/sinks/{name}",
    "google_storage_bucket_object": "{bucket}-{name}",
    "google_iam_workload_identity_pool": "projects/{project}/locations/global/workloadIdentityPools/{workload_identity_pool_id}",
}

_GCE_SELF_LINKS: dict[str, str] = {
    "google_compute_instance_template": "projects/{project}/global/instanceTemplates/{name}",
    "google_compute_region_instance_template": "projects/{project}/regions/{region}/instanceTemplates/{name}",
    "google_compute_instance_group_manager": "projects/{project}/zones/{zone}/instanceGroupManagers/{name}",
    "google_compute_region_instance_group_manager": "projects/{project}/regions/{region}/instanceGroupManagers/{name}",
    "google_compute_reservation": "projects/{project}/zones/{zone}/reservations/{name}",
}

_TIME_NAMES = re.compile(r"(^|_)(time|date|timestamp|created|updated)(_|$)|_at$|^creation_")
_FIXED_TIME = "2026-01-01T00:00:00Z"


@dataclass
class Context:
    """What a provider knows when it computes values: its configuration and the resource's arguments."""

    type_name: str
    provider: dict[str, Any] = field(default_factory=dict)
    known: dict[str, Any] = field(default_factory=dict)

    @property
    def region(self) -> str:
        return str(self.known.get("region") or self.provider.get("region") or "us-east-1")

    @property
    def account(self) -> str:
        ids = self.provider.get("allowed_account_ids") or []
        return str(next(iter(sorted(ids)), None) or self.provider.get("account_id") or "123456789012")

    @property
    def project(self) -> str:
        return str(self.known.get("project") or self.provider.get("project") or "standin-project")

    def seed(self, *parts: str) -> str:
        blob = json.dumps([self.type_name, cty.to_plain(self.known), *parts], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def _fmt(template: str, values: dict[str, Any]) -> str | None:
    try:
        text = template.format(**values)
    except (KeyError, IndexError):
        return None
    return None if "None" in text.split("/") else text


def _values(ctx: Context) -> dict[str, Any]:
    known = {k: v for k, v in cty.to_plain(ctx.known).items() if isinstance(v, str | int) and v != ""}
    h = ctx.seed("ids")
    out: dict[str, Any] = {
        "region": ctx.region,
        "account": ctx.account,
        "project": ctx.project,
        "hex8": h[:8],
        "uuid": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
        "path": "/",
        "group_name": "default",
        **known,
    }
    out["path"] = str(out.get("path") or "/").lstrip("/")
    if "name" not in known and "name_prefix" in known:
        out["name"] = f"{known['name_prefix']}{h[:26]}"
    if "location" not in known:
        out["location"] = out["region"]
    if "zone" not in known:
        out["zone"] = f"{out['region']}-a" if ctx.type_name.startswith("google_") else f"{out['region']}a"
    if "url" in known:
        out["url_host"] = re.sub(r"^https://", "", str(known["url"]))
    if ctx.type_name == "google_service_account" and "account_id" in known:
        out["email"] = f"{known['account_id']}@{out['project']}.iam.gserviceaccount.com"
    return out


def resource_id(ctx: Context) -> str:
    h = ctx.seed("id")
    if ctx.type_name in _EC2_IDS:
        prefix = _EC2_IDS[ctx.type_name][0]
        return f"{prefix}{h[:17]}" if prefix else f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
    values = _values(ctx)
    if ctx.type_name in _NAMED_IDS:
        if "{arn}" in _NAMED_IDS[ctx.type_name]:
            values["arn"] = arn(ctx)
        text = _fmt(_NAMED_IDS[ctx.type_name], values)
        if text:
            return text
    for key in ("name", "bucket", "function_name"):
        if isinstance(values.get(key), str):
            return str(values[key])
    return f"{ctx.type_name.split('_', 1)[-1].replace('_', '-')}-{h[:12]}"


def arn(ctx: Context, resource_id_value: str | None = None) -> str:
    values = _values(ctx)
    if ctx.type_name in _EC2_IDS:
        values["id"] = resource_id_value or resource_id(ctx)
        return f"arn:aws:ec2:{ctx.region}:{ctx.account}:{_EC2_IDS[ctx.type_name][1].format(**values)}"
    service, part = _ARNS.get(
        ctx.type_name, (ctx.type_name.split("_")[1] if "_" in ctx.type_name else "x", "")
    )
    resource = _fmt(part, values) if part else None
    if resource is None:
        resource = f"{ctx.type_name.split('_', 2)[-1].replace('_', '-')}/{ctx.seed('arn')[:12]}"
    region = "" if service in _GLOBAL_SERVICES else ctx.region
    account = "" if service in _NO_ACCOUNT_SERVICES else ctx.account
    if ctx.type_name == "aws_sns_topic_subscription":
        topic = str(ctx.known.get("topic_arn") or f"arn:aws:sns:{ctx.region}:{ctx.account}:topic")
        return f"{topic}:{values['uuid']}"
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def computed_value(ctx: Context, path: tuple[str, ...], ty: cty.CtyType, top: dict[str, Any]) -> Any:
    """The value a provider would compute for the attribute at `path` (names only) of type `ty`."""
    name = path[-1]
    k = cty.kind(ty)
    if k == "dynamic":
        return cty.Dyn("string", _string(ctx, path, top))
    if k == "string":
        return _string(ctx, path, top)
    if k == "number":
        return 1 if name in ("latest_version", "default_version", "version", "generation") else 0
    if k == "bool":
        return False
    if k in ("list", "set", "tuple"):
        return [] if k != "tuple" else [computed_value(ctx, path, t, top) for t in ty[1]]
    if k == "map":
        return {}
    if k == "object":
        return {n: computed_value(ctx, (*path, n), t, top) for n, t in ty[1].items()}
    raise ValueError(f"unsupported type {ty!r}")


def _string(ctx: Context, path: tuple[str, ...], top: dict[str, Any]) -> str:
    name = path[-1]
    nested = len(path) > 1
    h = ctx.seed(*path)
    tname = ctx.type_name
    if not nested:
        if name == "id":
            return resource_id(ctx)
        if name == "arn" and tname.startswith("aws_"):
            rid = top.get("id") if isinstance(top.get("id"), str) else None
            return arn(ctx, rid)
        if name in ("owner_id", "account_id") and tname.startswith("aws_"):
            return ctx.account
        if name == "region":
            return ctx.region
        if name == "name" and "name_prefix" in ctx.known and ctx.known["name_prefix"]:
            return f"{ctx.known['name_prefix']}{h[:26]}"
        if name == "unique_id":
            return ("AROA" + h[:17]).upper() if tname.startswith("aws_") else str(int(h[:20], 16))[:21]
        if name == "invoke_arn" and tname == "aws_lambda_function":
            fn = arn(ctx)
            return f"arn:aws:apigateway:{ctx.region}:lambda:path/2015-03-31/functions/{fn}/invocations"
        if name == "qualified_arn" and tname == "aws_lambda_function":
            return f"{arn(ctx)}:1"
        if name == "url" and tname == "aws_sqs_queue":
            return resource_id(ctx)
        if name in ("bucket_domain_name", "bucket_regional_domain_name"):
            return f"{ctx.known.get('bucket', 'bucket')}.s3.{ctx.region}.amazonaws.com"
        if name == "self_link" and tname.startswith("google_"):
            tmpl = _GCE_SELF_LINKS.get(tname)
            link = _fmt(tmpl, _values(ctx)) if tmpl else None
            base = (
                "https://www.googleapis.com/compute/v1/"
                if tmpl
                else "https://www.googleapis.com/storage/v1/b/"
            )
            return base + (link or str(ctx.known.get("name") or h[:12]))
        if name == "email" and tname == "google_service_account":
            return str(_values(ctx).get("email") or f"sa-{h[:8]}@{ctx.project}.iam.gserviceaccount.com")
        if name == "member" and tname == "google_service_account":
            return "serviceAccount:" + _string(ctx, ("email",), top)
        if name == "name" and tname == "google_service_account":
            return resource_id(ctx)
        if name == "url" and tname == "google_storage_bucket":
            return f"gs://{ctx.known.get('name', h[:12])}"
        if name == "project" and tname.startswith("google_"):
            return ctx.project
        if name == "location" and tname.startswith("google_"):
            return str(ctx.provider.get("region") or "us-central1").upper()
    if name.endswith("_arn"):
        service = name[: -len("_arn")].split("_")[-1] or "x"
        return f"arn:aws:{service}:{ctx.region}:{ctx.account}:{name[:-4].replace('_', '-')}/{h[:12]}"
    if _TIME_NAMES.search(name):
        return _FIXED_TIME
    if name in ("etag", "fingerprint", "md5hash", "crc32c", "checksum", "hash", "source_code_hash"):
        return h[:32]
    if name in ("uri", "url", "endpoint") or name.endswith("_uri") or name.endswith("_url"):
        return f"https://{name.replace('_', '-')}-{h[:8]}.example.internal"
    if name.endswith("_id"):
        return f"{name[:-3].replace('_', '-')}-{h[:17]}"
    return f"{name.replace('_', '-')}-{h[:12]}"


def fill_unknowns(block: Block, value: Any, ctx: Context) -> Any:
    """Apply: every unknown in `value` (an object of `block`'s type) becomes a computed fake."""
    return _fill(block.implied_type(), value, ctx, (), value if isinstance(value, dict) else {})


def _fill(ty: cty.CtyType, value: Any, ctx: Context, path: tuple[str, ...], top: dict[str, Any]) -> Any:
    if cty.is_unknown(value):
        return computed_value(ctx, path or ("value",), ty, top)
    if value is None:
        return None
    k = cty.kind(ty)
    if k == "dynamic":
        assert isinstance(value, cty.Dyn)
        return cty.Dyn(value.type, _fill(value.type, value.value, ctx, path, top))
    if k in ("list", "set"):
        return [_fill(ty[1], v, ctx, path, top) for v in value]
    if k == "tuple":
        return [_fill(t, v, ctx, path, top) for t, v in zip(ty[1], value, strict=True)]
    if k == "map":
        return {key: _fill(ty[1], v, ctx, (*path, key), top) for key, v in value.items()}
    if k == "object":
        filled: dict[str, Any] = {}
        # `id` first: an ARN embeds it
        for name in sorted(ty[1], key=lambda n: n != "id"):
            filled[name] = _fill(
                ty[1][name], value.get(name), ctx, (*path, name), filled if not path else top
            )
        return filled
    return value
