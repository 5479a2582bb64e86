"""Spec -> files Terraform reads: variables as JSON (json.dumps, never a template), text files with jinja2.

Rendering is deterministic: sorted keys, no timestamps, no absolute paths, so a re-run writes the same
bytes and `--check` can tell CI that what is committed is stale.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctl.catalog import Catalog, InstanceType, load_catalog
from pyctl.env_root import render_root
from pyctl.errors import PyctlError
from pyctl.spec import (
    EnvSpec,
    LoadedEnv,
    Pool,
    SpotSettings,
    display_path,
    gpus_per_instance,
    resolve_instance_type,
)

TFVARS_FILE = "terraform.tfvars.json"
BACKEND_FILE = "backend.hcl"
# Function zips and their hashes are build artifacts (git-ignored): Terraform loads *.auto.tfvars.json itself.
FUNCTIONS_FILE = "functions.auto.tfvars.json"
# The node agent bundles (one per cloud the env uses) and the variables naming them: build artifacts too.
AGENT_BUNDLES_FILE = "agent_bundles.auto.tfvars.json"
BUILD_DIR = ".pyctl-build"


@dataclass(frozen=True)
class Rendered:
    """What `pyctl render` writes, as file name (relative to the env dir) -> bytes.

    `files` are committed and compared by `--check`; `generated` (function zips and the variables that
    name them) are rebuilt on every render. All of them are inputs of a plan.
    """

    env_dir: Path
    files: dict[str, bytes]
    generated: dict[str, bytes] = field(default_factory=dict)

    def paths(self) -> list[Path]:
        return [self.env_dir / name for name in sorted({**self.files, **self.generated})]


def render_env(loaded: LoadedEnv, catalog: Catalog | None = None) -> Rendered:
    spec = loaded.spec
    tfvars = terraform_variables(spec, catalog or load_catalog())
    files = {
        TFVARS_FILE: _json_bytes(tfvars),
        BACKEND_FILE: _render_template(
            "backend.hcl.j2", backend=spec.backend.model_dump(), env=spec.env.name
        ).encode(),
    }
    clouds = [c for c in ("aws", "gcp") if getattr(spec.clouds, c) is not None]
    backend = "s3" if spec.backend.s3 is not None else "gcs"
    files.update(render_root(loaded.dir, spec.env.name, clouds, backend, _render_template))
    generated = {**_function_packages(spec), **_agent_bundles(clouds)}
    return Rendered(env_dir=loaded.dir, files=files, generated=generated)


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def functions_for(spec: EnvSpec) -> list[str]:
    """The function packages an env deploys, by the features it enables."""
    names = []
    if spec.clouds.aws is not None and spec.watchdog.enabled:
        names.append("gpu_watchdog")
    if spec.clouds.aws is not None and spec.spot_recovery.enabled:
        names.append("spot_recovery")
    if spec.clouds.gcp is not None and spec.watchdog.enabled:
        names.append("gcp_watchdog")
    return names


def _function_packages(spec: EnvSpec) -> dict[str, bytes]:
    from pyctl.package import FUNCTIONS, package_entries, zip_bytes

    generated: dict[str, bytes] = {}
    variables: dict[str, dict[str, str]] = {}
    for name in functions_for(spec):
        data = zip_bytes(package_entries(FUNCTIONS[name]))
        rel = f"{BUILD_DIR}/{name}.zip"
        generated[rel] = data
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        variables[name] = {"path": rel, "base64sha256": digest}
    if variables:
        generated[FUNCTIONS_FILE] = _json_bytes({"function_packages": variables})
    return generated


def _agent_bundles(clouds: list[str]) -> dict[str, bytes]:
    """Each cloud's node agent bundle (pyctl.node_bundle) and `<cloud>_agent_bundle = {path, sha256}`."""
    from pyctl.node_bundle import bundle_bytes, bundle_filename

    generated: dict[str, bytes] = {}
    variables: dict[str, dict[str, str]] = {}
    for cloud in clouds:
        assert cloud in ("aws", "gcp")
        data = bundle_bytes("aws" if cloud == "aws" else "gcp")
        rel = f"{BUILD_DIR}/{bundle_filename('aws' if cloud == 'aws' else 'gcp')}"
        generated[rel] = data
        variables[f"{cloud}_agent_bundle"] = {"path": rel, "sha256": hashlib.sha256(data).hexdigest()}
    if variables:
        generated[AGENT_BUNDLES_FILE] = _json_bytes(variables)
    return generated


def write_rendered(rendered: Rendered) -> list[Path]:
    """Write the files that differ; return the paths written."""
    written = []
    for name, data in sorted({**rendered.files, **rendered.generated}.items()):
        path = rendered.env_dir / name
        if path.exists() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        written.append(path)
    return written


def check_rendered(rendered: Rendered) -> None:
    """Raise naming every file whose content on disk differs from a fresh render."""
    stale = []
    for name, data in sorted(rendered.files.items()):
        path = rendered.env_dir / name
        if not path.exists():
            stale.append(f"{display_path(path)}: missing; run `pyctl render`")
        elif path.read_bytes() != data:
            stale.append(
                f"{display_path(path)}: differs from env.yaml; run `pyctl render` and commit the result"
            )
    if stale:
        raise PyctlError("\n".join(stale), exit_code=1)


def _render_template(name: str, **context: Any) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pyctl", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - HCL, not HTML
    )
    env.filters["hcl"] = json.dumps  # a JSON string literal is a valid HCL string literal
    return env.get_template(name).render(**context)


def terraform_variables(spec: EnvSpec, catalog: Catalog) -> dict[str, Any]:
    """The root module's variables: exactly what the rendered root declares (a cloud's variables only when
    the env uses that cloud)."""
    aws, gcp = spec.clouds.aws, spec.clouds.gcp
    out: dict[str, Any] = {
        "env": {"name": spec.env.name, "protected": spec.env.protected},
        "tags": env_tags(spec),
    }
    if aws is not None or gcp is not None:  # AWS: the recovery function; GCP: the fallback's rule
        out["spot_recovery"] = {
            **spec.spot_recovery.model_dump(exclude={"jobs"}),
            "jobs": {job.name: {"pool": job.pool} for job in spec.spot_recovery.jobs},
        }
    if aws is not None:
        out["aws"] = aws.model_dump()
        out["aws_pools"] = {p.name: _aws_pool(p, catalog) for p in spec.pools if p.cloud == "aws"}
    if gcp is not None:
        out["gcp"] = gcp.model_dump()
        out["gcp_pools"] = {p.name: _gcp_pool(p, catalog) for p in spec.pools if p.cloud == "gcp"}
    out["model_cache"] = {
        **(
            {"aws": None if spec.model_cache.aws is None else spec.model_cache.aws.model_dump()}
            if aws
            else {}
        ),
        **(
            {"gcp": None if spec.model_cache.gcp is None else spec.model_cache.gcp.model_dump()}
            if gcp
            else {}
        ),
        "models": [m.model_dump() for m in spec.model_cache.models],
        "nvme_path": spec.model_cache.nvme_path,
    }
    out["watchdog"] = _watchdog(spec)
    return out


def env_tags(spec: EnvSpec) -> dict[str, str]:
    tags = dict(spec.tags)
    if spec.env.cost_center is not None:
        tags.setdefault("CostCenter", spec.env.cost_center)
    tags.update({"Env": spec.env.name, "ManagedBy": "pyctl"})
    return tags


def _resolved(pool: Pool, catalog: Catalog) -> tuple[InstanceType, int]:
    """The pool's instance/machine type and its GPUs per instance."""
    itype = resolve_instance_type(pool, catalog)
    if itype is None:  # the spec's validation guarantees a type; this guards direct callers
        raise PyctlError(f"pool {pool.name}: no instance type resolved")
    return itype, gpus_per_instance(pool, itype)


def _aws_pool(pool: Pool, catalog: Catalog) -> dict[str, Any]:
    itype, gpus = _resolved(pool, catalog)
    spot = None
    if pool.capacity == "spot":
        s = pool.spot or SpotSettings()
        spot = {
            "allocation_strategy": s.allocation_strategy,
            "on_demand_base": s.on_demand_base,
            "on_demand_percentage_above_base": s.on_demand_percentage_above_base,
            "max_price": None if s.max_price is None else f"{s.max_price:.4f}",
            "fallback": s.fallback,
            "capacity_rebalance": s.capacity_rebalance,
        }
    return {
        **_common_pool(pool, itype, gpus),
        "instance_type": itype.name,
        # The mixed-instances policy's overrides: the primary type first, then its equals.
        "instance_types": [itype.name, *(pool.spot.instance_types if pool.spot else [])],
        "root_volume_gb": pool.root_volume_gb,
        "spot": spot,
        "reservation": _reservation(pool, aws=True),
        "ingress": pool.ingress.model_dump(),
        "boot_secrets": [b.model_dump() for b in pool.boot_secrets],
    }


def _gcp_pool(pool: Pool, catalog: Catalog) -> dict[str, Any]:
    itype, gpus = _resolved(pool, catalog)
    attaches = itype.attaches_accelerators
    gpu_info = catalog.gpus[itype.gpu]
    s = pool.spot or SpotSettings()
    return {
        **_common_pool(pool, itype, gpus),
        "machine_type": itype.name,
        # N1 takes GPUs as guest accelerators; accelerator-optimized types (a2, a3, a4, g2) carry theirs.
        "accelerator_type": gpu_info.gcp_accelerator if attaches else None,
        "accelerator_count": gpus if attaches else 0,
        "local_ssd_count": itype.local_nvme_gb // 375,
        "boot_disk_gb": pool.root_volume_gb,
        "distribution": pool.distribution or ("regional" if len(pool.zones) != 1 else "zonal"),
        "termination_action": (s.termination_action or "DELETE") if pool.capacity == "spot" else None,
        "reservation": _reservation(pool, aws=False),
        # on_demand: the pool gets an on-demand twin group that the watchdog's fallback pass sizes up.
        "fallback": s.fallback if pool.capacity == "spot" else "none",
    }


def _common_pool(pool: Pool, itype: InstanceType, gpus: int) -> dict[str, Any]:
    return {
        "capacity": pool.capacity,
        "gpu": itype.gpu,
        "gpus_per_instance": gpus,
        "zones": list(pool.zones),
        "min_size": pool.min,
        "desired_size": pool.desired_size,
        "max_size": pool.max,
        "model": pool.model,
        "auto_shutdown": pool.auto_shutdown,
        "watchdog_may_terminate": pool.watchdog_may_terminate,
        "tags": dict(pool.tags),
    }


def _reservation(pool: Pool, *, aws: bool) -> dict[str, Any] | None:
    if pool.capacity != "reserved":
        return None
    r = pool.reservation_settings
    out: dict[str, Any] = {
        "instance_count": pool.reserved_instances,
        "end_date": r.end_date,
    }
    if aws:
        out["match"] = r.match
        out["capacity_block_offering_id"] = r.capacity_block.offering_id if r.capacity_block else None
    return out


def _watchdog(spec: EnvSpec) -> dict[str, Any]:
    w = spec.watchdog
    return {
        "enabled": w.enabled,
        "schedule": w.schedule,
        "idle_minutes": w.idle_minutes,
        "threshold_percent": w.threshold_percent,
        "min_uptime_minutes": w.min_uptime_minutes,
        "missing_data": w.missing_data,
        "missing_data_grace_minutes": w.missing_data_grace_minutes,
        "dry_run": w.dry_run,
        "max_actions_per_run": w.max_actions_per_run,
        "act_in_protected_env": w.act_in_protected_env,
        # Only when set, so envs without a warning render as before.
        **({"warn_minutes": w.warn_minutes} if w.warn_minutes else {}),
        "metric_namespace": w.metric.namespace,
        "metric_name": w.metric.name,
        "notify_emails": list(w.notify.email),
        "slack_webhook_ssm_parameter": w.notify.slack_webhook_ssm_parameter,
        "log_retention_days": w.log_retention_days,
        # $/hour by TYPE and TYPE:spot, for the cost lines of the watchdog's log and notices.
        "hourly_prices": _price_table(spec),
    }


def _price_table(spec: EnvSpec) -> dict[str, float]:
    """Both clouds' types in one table: AWS and GCP type names never collide (p5.48xlarge, a3-highgpu-8g)."""
    from pyctl.catalog.prices import hourly_price_table

    table: dict[str, float] = {}
    if spec.clouds.aws is not None:
        table.update(hourly_price_table("aws", spec.clouds.aws.region, spec.pricing))
    if spec.clouds.gcp is not None:
        table.update(hourly_price_table("gcp", spec.clouds.gcp.region, spec.pricing))
    return table
