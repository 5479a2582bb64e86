"""What the stand-in does with a value: validate, plan, apply, read. Provider-neutral except where a real
provider computes something at plan time that our HCL depends on (tags_all, GCP labels, policy documents)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import cty
from .schema import Attribute, Block
from .values import Context, computed_value, fill_unknowns

Diag = tuple[str, str, tuple[str, ...]]  # summary, detail, attribute path


# ---------------------------------------------------------------- validate


def read_only_violations(block: Block, config: Any, path: tuple[str, ...] = ()) -> list[Diag]:
    """Terraform core does not reject a read-only (computed-only) attribute set in config; a provider does."""
    if not isinstance(config, dict):
        return []
    out: list[Diag] = []
    for name, attr in block.attributes.items():
        value = config.get(name)
        if value is None:
            continue
        if attr.read_only:
            out.append(
                (
                    "Invalid Configuration for Read-Only Attribute",
                    f'Cannot set value for this attribute as the provider has marked it as read-only: "{name}".',
                    (*path, name),
                )
            )
        elif attr.nested is not None:
            for element in _elements(value, attr.nesting):
                out += read_only_violations(attr.nested, element, (*path, name))
    for name, nested in block.blocks.items():
        for element in _elements(config.get(name), nested.nesting):
            out += read_only_violations(nested.block, element, (*path, name))
    return out


def _elements(value: Any, nesting: str) -> list[Any]:
    if value is None or cty.is_unknown(value):
        return []
    if isinstance(value, cty.Dyn):
        value = value.value
    if nesting == "single":
        return [value]
    if nesting == "map":
        return list(value.values())
    return list(value)


# ---------------------------------------------------------------- plan


def plan(
    block: Block, type_name: str, provider_cfg: dict[str, Any], prior: Any, proposed: Any, config: Any
) -> Any:
    if proposed is None:
        return None  # destroy
    planned = _mark_unknown(block, proposed) if prior is None else proposed
    if isinstance(planned, dict):
        _plan_time_values(block, type_name, provider_cfg, planned)
    return _without_write_only(block, planned)


def _without_write_only(block: Block, value: Any) -> Any:
    """A write-only attribute reaches the provider in config but never a plan or state (core checks this)."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for name, attr in block.attributes.items():
        if attr.write_only:
            out[name] = None
    for name, nested in block.blocks.items():
        current = out.get(name)
        if current is not None and not cty.is_unknown(current):
            out[name] = _map_elements(
                current, nested.nesting, lambda e, b=nested: _without_write_only(b.block, e)
            )
    return out


def _mark_unknown(block: Block, value: Any) -> Any:
    """Create: a computed attribute the configuration leaves unset is known only after apply."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for name, attr in block.attributes.items():
        current = out.get(name)
        if current is None and attr.computed:
            out[name] = cty.UNKNOWN
        elif attr.nested is not None and current is not None and not cty.is_unknown(current):
            out[name] = _map_elements(current, attr.nesting, lambda e, a=attr: _mark_unknown(a.nested, e))
    for name, nested in block.blocks.items():
        current = out.get(name)
        if current is not None and not cty.is_unknown(current):
            out[name] = _map_elements(current, nested.nesting, lambda e, b=nested: _mark_unknown(b.block, e))
    return out


def _map_elements(value: Any, nesting: str, fn: Any) -> Any:
    if isinstance(value, cty.Dyn):
        return cty.Dyn(value.type, _map_elements(value.value, nesting, fn))
    if nesting == "single":
        return fn(value)
    if nesting == "map":
        return {k: fn(v) for k, v in value.items()}
    return [fn(v) for v in value]


def _plan_time_values(
    block: Block, type_name: str, provider_cfg: dict[str, Any], planned: dict[str, Any]
) -> None:
    attrs = block.attributes
    if "tags_all" in attrs and "tags" in attrs:
        planned["tags_all"] = _merge_known(_default_tags(provider_cfg), planned.get("tags"))
    if "effective_labels" in attrs and "labels" in attrs:
        defaults = provider_cfg.get("default_labels") or {}
        merged = _merge_known(defaults, planned.get("labels"))
        if isinstance(merged, dict):
            merged = {**merged, "goog-terraform-provisioned": "true"}
        planned["effective_labels"] = merged
        if "terraform_labels" in attrs:
            planned["terraform_labels"] = merged


def _default_tags(provider_cfg: dict[str, Any]) -> dict[str, Any]:
    blocks = provider_cfg.get("default_tags") or []
    tags: dict[str, Any] = {}
    for b in blocks if isinstance(blocks, list) else [blocks]:
        if isinstance(b, dict) and isinstance(b.get("tags"), dict):
            tags.update(b["tags"])
    return tags


def _merge_known(base: dict[str, Any], extra: Any) -> Any:
    if cty.is_unknown(extra) or any(cty.is_unknown(v) for v in base.values()):
        return cty.UNKNOWN
    if isinstance(extra, dict) and any(cty.is_unknown(v) for v in extra.values()):
        return cty.UNKNOWN
    return {**base, **(extra or {})}


# ---------------------------------------------------------------- apply


def apply(block: Block, type_name: str, provider_cfg: dict[str, Any], planned: Any) -> Any:
    if planned is None:
        return None
    ctx = Context(type_name, provider_cfg, _known_args(block, planned))
    return fill_unknowns(block, planned, ctx)


def _known_args(block: Block, value: dict[str, Any]) -> dict[str, Any]:
    """The resource's own known, configurable top-level values: what its ids and ARNs are built from."""
    out: dict[str, Any] = {}
    for name, attr in block.attributes.items():
        v = value.get(name)
        if v is None or cty.is_unknown(v) or attr.read_only:
            continue
        if isinstance(v, str | int | float | bool):
            out[name] = v
    return out


# ---------------------------------------------------------------- data sources


def read_data(
    block: Block,
    type_name: str,
    provider_cfg: dict[str, Any],
    config: dict[str, Any],
    fixtures: dict[str, Any],
) -> dict[str, Any]:
    state = dict(config)
    special = _DATA_SOURCES.get(type_name)
    if special is not None:
        for name, value in special(provider_cfg, config, fixtures).items():
            if name in block.attributes:
                state[name] = _coerce(value, block.attributes[name].implied_type())
    ctx = Context(type_name, provider_cfg, _known_args(block, config))
    for name, attr in block.attributes.items():
        if state.get(name) is None and attr.computed:
            state[name] = _computed(ctx, attr, state)
    return state


def _coerce(value: Any, ty: Any) -> Any:
    """A fixture value in the attribute's schema type (the data gives some numbers as strings, or no type)."""
    if ty == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if ty == "number" and isinstance(value, str):
        return float(value) if "." in value else int(value)
    return value


def _computed(ctx: Context, attr: Attribute, state: dict[str, Any]) -> Any:
    return computed_value(ctx, (attr.name,), attr.implied_type(), state)


def _caller_identity(cfg: dict[str, Any], config: dict[str, Any], fx: dict[str, Any]) -> dict[str, Any]:
    account = Context("aws_caller_identity", cfg).account
    return {
        "account_id": account,
        "id": account,
        "arn": f"arn:aws:sts::{account}:assumed-role/standin/session",
        "user_id": "AROASTANDIN000000000:session",
    }


def _region(cfg: dict[str, Any], config: dict[str, Any], fx: dict[str, Any]) -> dict[str, Any]:
    region = config.get("region") or config.get("name") or cfg.get("region") or "us-east-1"
    return {
        "name": region,
        "region": region,
        "id": region,
        "endpoint": f"ec2.{region}.amazonaws.com",
        "description": region,
    }


def _partition(cfg: dict[str, Any], config: dict[str, Any], fx: dict[str, Any]) -> dict[str, Any]:
    return {
        "partition": "aws",
        "id": "aws",
        "dns_suffix": "amazonaws.com",
        "reverse_dns_prefix": "com.amazonaws",
    }


def _subnet(cfg: dict[str, Any], config: dict[str, Any], fx: dict[str, Any]) -> dict[str, Any]:
    subnet_id = config.get("id")
    known = (fx.get("aws_subnet") or {}).get(subnet_id or "", {})
    region = cfg.get("region") or "us-east-1"
    account = Context("aws_subnet", cfg).account
    return {
        "availability_zone": known.get("availability_zone", f"{region}a"),
        "vpc_id": known.get("vpc_id", "vpc-0standin000000000"),
        "arn": f"arn:aws:ec2:{region}:{account}:subnet/{subnet_id}",
        "owner_id": account,
        "cidr_block": known.get("cidr_block", "10.0.0.0/24"),
    }


def _ssm_parameter(cfg: dict[str, Any], config: dict[str, Any], fx: dict[str, Any]) -> dict[str, Any]:
    name = str(config.get("name"))
    region = cfg.get("region") or "us-east-1"
    account = Context("aws_ssm_parameter", cfg).account
    value = (fx.get("aws_ssm_parameter") or {}).get(name)
    if value is None:
        value = "ami-" + Context("aws_ssm_parameter", cfg, {"name": name}).seed("ami")[:17]
    return {
        "value": value,
        "insecure_value": value,
        "type": "String",
        "version": 1,
        "arn": f"arn:aws:ssm:{region}:{account}:parameter{name if name.startswith('/') else '/' + name}",
        "id": name,
    }


def _policy_document(cfg: dict[str, Any], config: dict[str, Any], fx: dict[str, Any]) -> dict[str, Any]:
    statements: list[dict[str, Any]] = []
    for source in config.get("source_policy_documents") or []:
        statements += json.loads(source).get("Statement", [])
    for st in config.get("statement") or []:
        out: dict[str, Any] = {}
        if st.get("sid"):
            out["Sid"] = st["sid"]
        out["Effect"] = st.get("effect") or "Allow"
        for key, arg in (
            ("Action", "actions"),
            ("NotAction", "not_actions"),
            ("Resource", "resources"),
            ("NotResource", "not_resources"),
        ):
            if st.get(arg):
                out[key] = _one_or_many(st[arg])
        for key, arg in (("Principal", "principals"), ("NotPrincipal", "not_principals")):
            if st.get(arg):
                principals: dict[str, Any] = {}
                for p in st[arg]:
                    principals.setdefault(p["type"], []).extend(p["identifiers"])
                out[key] = (
                    "*"
                    if principals == {"*": ["*"]}
                    else {k: _one_or_many(v) for k, v in sorted(principals.items())}
                )
        conditions: dict[str, dict[str, Any]] = {}
        for c in st.get("condition") or []:
            conditions.setdefault(c["test"], {})[c["variable"]] = _one_or_many(c["values"])
        if conditions:
            out["Condition"] = conditions
        statements.append(out)
    for override in config.get("override_policy_documents") or []:
        for st in json.loads(override).get("Statement", []):
            statements = [s for s in statements if not (st.get("Sid") and s.get("Sid") == st.get("Sid"))] + [
                st
            ]
    doc: dict[str, Any] = {"Version": config.get("version") or "2012-10-17"}
    if config.get("policy_id"):
        doc["Id"] = config["policy_id"]
    doc["Statement"] = statements
    text = json.dumps(doc, indent=2)
    return {
        "json": text,
        "minified_json": json.dumps(doc, separators=(",", ":")),
        "id": hashlib.sha256(text.encode()).hexdigest()[:10],
    }


def _one_or_many(values: list[Any]) -> Any:
    values = sorted(set(values))
    return values[0] if len(values) == 1 else values


def _gcs_service_account(cfg: dict[str, Any], config: dict[str, Any], fx: dict[str, Any]) -> dict[str, Any]:
    project = config.get("project") or cfg.get("project") or "standin-project"
    number = (fx.get("google_project_number") or {}).get(project, "123456789012")
    email = f"service-{number}@gs-project-accounts.iam.gserviceaccount.com"
    return {"email_address": email, "member": f"serviceAccount:{email}", "id": email, "project": project}


_DATA_SOURCES = {
    "aws_caller_identity": _caller_identity,
    "aws_region": _region,
    "aws_partition": _partition,
    "aws_subnet": _subnet,
    "aws_ssm_parameter": _ssm_parameter,
    "aws_iam_policy_document": _policy_document,
    "google_storage_project_service_account": _gcs_service_account,
}
