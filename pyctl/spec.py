"""The env.yaml model: loading, validation against the GPU catalog, errors with the field path.

Two passes: pydantic checks structure and types (unknown keys, wrong types, ranges); `_semantic_problems`
then checks what needs the whole document and the catalog (GPU and instance types, counts, regions and
zones, pool names, model references). Every problem becomes one line `FILE: PATH: message (line N)`.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from pyctl.catalog import Catalog, InstanceType, load_catalog
from pyctl.clouds.features import Feature, unsupported
from pyctl.errors import PyctlError

ENV_FILE = "env.yaml"

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")]
AwsRegion = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")]
GcpRegion = Annotated[str, StringConstraints(pattern=r"^[a-z]+-[a-z]+\d$")]
BucketName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
CapacityKind = Literal["reserved", "on_demand", "spot"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvMeta(Strict):
    name: Name
    protected: bool = False
    cost_center: str | None = Field(default=None, min_length=1, max_length=128)


class AwsCloud(Strict):
    account_id: Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
    region: AwsRegion
    vpc_id: Annotated[str, StringConstraints(pattern=r"^vpc-[0-9a-f]{8,17}$")]
    subnet_ids: list[Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = Field(
        min_length=1
    )


class GcpCloud(Strict):
    project: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
    region: GcpRegion
    network: str = Field(min_length=1)
    subnetwork: str = Field(min_length=1)


class Clouds(Strict):
    aws: AwsCloud | None = None
    gcp: GcpCloud | None = None


class S3Backend(Strict):
    bucket: BucketName
    key: str = Field(min_length=1)
    region: AwsRegion
    use_lockfile: bool = True
    kms_key_id: str | None = None


class GcsBackend(Strict):
    bucket: BucketName
    prefix: str = Field(min_length=1)


class Backend(Strict):
    s3: S3Backend | None = None
    gcs: GcsBackend | None = None


class SpotSettings(Strict):
    # Further instance types of equal capability (same GPU and count) for the mixed-instances policy (AWS).
    instance_types: list[str] = []
    allocation_strategy: Literal[
        "price-capacity-optimized", "capacity-optimized", "capacity-optimized-prioritized", "lowest-price"
    ] = "price-capacity-optimized"
    # The fallback floor: instances always bought on demand before any spot (AWS).
    on_demand_base: int = Field(default=0, ge=0)
    on_demand_percentage_above_base: int = Field(default=0, ge=0, le=100)
    max_price: float | None = Field(default=None, gt=0)
    # What to do when spot capacity is scarce: add on-demand capacity, or wait.
    fallback: Literal["on_demand", "none"] = "on_demand"
    capacity_rebalance: bool = True
    # GCP Spot VMs: STOP keeps the disk for a restart; DELETE frees it.
    termination_action: Literal["STOP", "DELETE"] | None = None


class CapacityBlock(Strict):
    """An EC2 Capacity Block for ML: bought once, cannot be cancelled (destroy only forgets it)."""

    offering_id: Annotated[str, StringConstraints(pattern=r"^cb-[0-9a-z]+$")]


class ReservationSettings(Strict):
    match: Literal["capacity-reservations-only", "capacity-reservations-first"] = "capacity-reservations-only"
    instance_count: int | None = Field(default=None, ge=1)
    end_date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    capacity_block: CapacityBlock | None = None


class Ingress(Strict):
    cidrs: list[str] = []
    security_group_ids: list[Annotated[str, StringConstraints(pattern=r"^sg-[0-9a-f]{8,17}$")]] = []
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = [8000, 9400]

    @field_validator("cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                net = ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a CIDR block ({exc})") from None
            if net.prefixlen == 0:
                raise ValueError(
                    f"{cidr!r} opens the pool to the whole internet; name the networks that need it"
                )
        return value


class BootSecret(Strict):
    """A secret a node reads at boot, by name: the value never appears in user-data, variables or outputs."""

    env_var: Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")]
    ssm_parameter: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9_./-]+$")] | None = None
    secrets_manager_secret: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9/_+=.@:-]+$")] | None = None


class Pool(Strict):
    name: Name
    cloud: Literal["aws", "gcp"]
    region: str | None = None
    zones: list[str] = []
    gpu: str | None = None
    instance_type: str | None = None
    gpus_per_instance: int | None = Field(default=None, ge=1)
    capacity: CapacityKind
    min: int = Field(default=0, ge=0)
    desired: int | None = Field(default=None, ge=0)
    max: int = Field(ge=0)
    spot: SpotSettings | None = None
    reservation: ReservationSettings | None = None
    model: str | None = None
    root_volume_gb: int = Field(default=200, ge=50, le=16384)
    auto_shutdown: bool = True
    # A spot instance from a one-time request cannot be stopped: may the watchdog terminate it instead?
    watchdog_may_terminate: bool = False
    distribution: Literal["zonal", "regional"] | None = None
    expected_hours_per_month: float | None = Field(default=None, ge=0, le=744)
    ingress: Ingress = Ingress()
    boot_secrets: list[BootSecret] = []
    tags: dict[str, str] = {}

    @field_validator("gpu", mode="before")
    @classmethod
    def _gpu_any_case(cls, value: object) -> object:
        """GPU names are case-insensitive (`L40S`, `H100`); the catalog's ids are lowercase."""
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def desired_size(self) -> int:
        return self.min if self.desired is None else self.desired

    @property
    def reservation_settings(self) -> ReservationSettings:
        return self.reservation or ReservationSettings()

    @property
    def reserved_instances(self) -> int:
        """A reserved pool's reservation size: instance_count, or max when not given."""
        count = self.reservation_settings.instance_count
        return self.max if count is None else count


class CachedModel(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$")]
    version: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$")]


class AwsModelCache(Strict):
    bucket: BucketName
    kms_key_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:kms:")
    access_log_bucket: BucketName | None = None
    noncurrent_version_days: int = Field(default=30, ge=1)


class GcpModelCache(Strict):
    bucket: BucketName
    location: str = "US"
    kms_key_name: str | None = Field(default=None, pattern=r"^projects/.+/cryptoKeys/.+$")
    noncurrent_version_days: int = Field(default=30, ge=1)


class ModelCache(Strict):
    aws: AwsModelCache | None = None
    gcp: GcpModelCache | None = None
    models: list[CachedModel] = []
    # Where the node-side NVMe cache is mounted.
    nvme_path: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9._/-]+$")] = "/mnt/nvme"


class WatchdogMetric(Strict):
    namespace: str = "CWAgent"
    name: str = "nvidia_smi_utilization_gpu"


class WatchdogNotify(Strict):
    email: list[Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = []
    # The webhook URL is a secret: only the SSM parameter's name is written down.
    slack_webhook_ssm_parameter: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9_./-]+$")] | None = (
        None
    )


class Watchdog(Strict):
    enabled: bool = True
    schedule: Annotated[
        str, StringConstraints(pattern=r"^(rate\(\d+ (minute|minutes|hour|hours)\)|cron\(.+\))$")
    ] = "rate(15 minutes)"
    idle_minutes: int = Field(default=30, ge=5, le=1440)
    threshold_percent: float = Field(default=5.0, gt=0, le=100)
    min_uptime_minutes: int = Field(default=20, ge=0, le=1440)
    missing_data: Literal["no-data", "idle"] = "no-data"
    missing_data_grace_minutes: int = Field(default=60, ge=0)
    dry_run: bool = False
    max_actions_per_run: int = Field(default=10, ge=0)
    act_in_protected_env: bool = False
    # AWS: warn (tag + notification) this many minutes before stopping an idle instance; 0: no warning.
    warn_minutes: int = Field(default=0, ge=0, le=1440)
    metric: WatchdogMetric = WatchdogMetric()
    notify: WatchdogNotify = WatchdogNotify()
    log_retention_days: int = Field(default=30, ge=1)


class SpotJob(Strict):
    """A standalone training job on spot: launched from its pool's launch template, replaced on interruption."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    pool: Name


class SpotRecovery(Strict):
    enabled: bool = True
    max_interruptions: int = Field(default=3, ge=1)
    window_hours: float = Field(default=6, gt=0)
    cooldown_hours: float = Field(default=2, gt=0)
    checkpoint_retention: int = Field(default=3, ge=1)
    # Jobs that run outside an Auto Scaling group; ASG pools are replaced by capacity rebalancing.
    jobs: list[SpotJob] = []


class PriceOverride(Strict):
    on_demand_hourly: float | None = Field(default=None, gt=0)
    spot_hourly: float | None = Field(default=None, gt=0)
    reserved_hourly: float | None = Field(default=None, gt=0)


class Pricing(Strict):
    # A negotiated discount (EDP, committed use) applied to on-demand and reserved list prices.
    discount_percent: float = Field(default=0, ge=0, lt=100)
    overrides: dict[str, PriceOverride] = {}


class EnvSpec(Strict):
    env: EnvMeta
    clouds: Clouds
    backend: Backend
    pools: list[Pool] = []
    model_cache: ModelCache = ModelCache()
    watchdog: Watchdog = Watchdog()
    spot_recovery: SpotRecovery = SpotRecovery()
    pricing: Pricing = Pricing()
    tags: dict[str, str] = {}

    def pool(self, name: str) -> Pool | None:
        return next((p for p in self.pools if p.name == name), None)


# Tag keys pyctl writes itself; a user value would silently lose to them.
RESERVED_TAG_KEYS = ("Env", "ManagedBy", "Pool", "CapacityKind", "AutoShutdown")


@dataclass(frozen=True)
class Problem:
    path: str
    message: str


@dataclass(frozen=True)
class LoadedEnv:
    """A validated env: its spec, its env.yaml and the root-module directory beside it."""

    spec: EnvSpec
    path: Path

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return self.spec.env.name


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest directory at or above `start` (default: cwd) that holds infra/envs."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "infra" / "envs").is_dir():
            return candidate
    raise PyctlError(
        f"{here}: no infra/envs here or above; run pyctl inside the repository or pass --env DIR"
    )


def env_file(env: str) -> Path:
    """Resolve `--env`: a directory holding env.yaml, an env.yaml path, or a name under infra/envs/."""
    as_path = Path(env)
    if as_path.is_file():
        return as_path
    if as_path.is_dir():
        return as_path / ENV_FILE
    if "/" in env or os.sep in env:
        raise PyctlError(f"{env}: no such env directory")
    envs_dir = (
        Path(os.environ["PYCTL_ENVS_DIR"])
        if "PYCTL_ENVS_DIR" in os.environ
        else find_repo_root() / "infra" / "envs"
    )
    candidate = envs_dir / env / ENV_FILE
    if not candidate.is_file():
        known = sorted(p.parent.name for p in envs_dir.glob(f"*/{ENV_FILE}"))
        raise PyctlError(f"{envs_dir}: unknown env {env!r} (known: {', '.join(known) or 'none'})")
    return candidate


def load_env(env: str) -> LoadedEnv:
    """Load and validate an env; raise PyctlError listing every problem, one per line."""
    path = env_file(env)
    return LoadedEnv(spec=load_spec_file(path), path=path)


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_spec_file(path: Path) -> EnvSpec:
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PyctlError(f"{shown}: cannot read: {exc.strerror}") from None
    data = _parse_yaml(text, shown)
    return validate_spec(data, shown, lines=lambda: key_lines(text))


def validate_spec(
    data: Any,
    shown: str,
    catalog: Catalog | None = None,
    lines: Callable[[], Mapping[str, int]] | None = None,
) -> EnvSpec:
    """`lines` (built only when there are problems) maps field paths to env.yaml lines for the messages."""
    if not isinstance(data, dict):
        raise PyctlError(f"{shown}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        spec = EnvSpec.model_validate(data)
    except ValidationError as exc:
        found = lines() if lines else {}
        raise PyctlError(
            "\n".join(
                f"{shown}: {_loc(e['loc'])}: {_pydantic_message(e)}{_at_line(found, _loc(e['loc']))}"
                for e in exc.errors()
            )
        ) from None
    problems = list(_semantic_problems(spec, catalog or load_catalog()))
    if problems:
        found = lines() if lines else {}
        raise PyctlError(
            "\n".join(f"{shown}: {p.path}: {p.message}{_at_line(found, p.path)}" for p in problems)
        )
    return spec


def key_lines(text: str) -> dict[str, int]:
    """Field path (as in error messages: `pools[0].spot.on_demand_base`) -> its line in the YAML text."""
    found: dict[str, int] = {}

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = f"{path}.{key.value}" if path else str(key.value)
                found[here] = key.start_mark.line + 1
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found[f"{path}[{i}]"] = item.start_mark.line + 1
                walk(item, f"{path}[{i}]")

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if root is not None:
        walk(root, "")
    return found


def _at_line(lines: Mapping[str, int], path: str) -> str:
    """` (line N)` for the path, or for its nearest parent in the file (a missing key: its mapping)."""
    while path:
        if path in lines:
            return f" (line {lines[path]})"
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return ""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML keeps the last one silently)."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            # The error's own mark is this (second) place; the message names the first.
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, shown: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise PyctlError(f"{shown}: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise PyctlError(f"{shown}: invalid YAML: {exc}") from None


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _pydantic_message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key" + _did_you_mean(error["loc"])
    if kind == "missing":
        return "required"
    if (
        kind == "string_type"
        and isinstance(error["input"], int | float)
        and not isinstance(error["input"], bool)
    ):
        return (
            f"expected a string, got the number {error['input']!r}: quote it in env.yaml "
            f'("{error["input"]}"); unquoted YAML numbers lose leading zeros'
        )
    msg = str(error["msg"])
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        return f"{error['input']!r} is not valid here (expected {error['ctx']['pattern']})"
    return msg


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The spec model that holds the last key of `loc` (for suggestions), walking field annotations."""
    model: Any = EnvSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # a list index: the element type was already taken from the annotation
        field = (
            model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        )
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside `X`, `X | None`, `list[X]` or `dict[str, X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    model = _model_at(loc)
    if model is None or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _semantic_problems(spec: EnvSpec, catalog: Catalog) -> Iterator[Problem]:
    if spec.clouds.aws is None and spec.clouds.gcp is None:
        yield Problem("clouds", "configure at least one of aws, gcp")
    if (spec.backend.s3 is None) == (spec.backend.gcs is None):
        yield Problem("backend", "set exactly one of s3, gcs")
    for key in spec.tags:
        if key in RESERVED_TAG_KEYS:
            yield Problem(f"tags.{key}", f"set by pyctl itself (reserved: {', '.join(RESERVED_TAG_KEYS)})")
        elif key.lower().startswith("aws:"):
            yield Problem(f"tags.{key}", "the aws: prefix is reserved by AWS")
    model_names = [m.name for m in spec.model_cache.models]
    seen_models: dict[tuple[str, str], int] = {}
    for i, model in enumerate(spec.model_cache.models):
        name_version = (model.name, model.version)
        if name_version in seen_models:
            yield Problem(f"model_cache.models[{i}]", f"duplicate model {model.name}@{model.version}")
        seen_models[name_version] = i
    seen: dict[str, int] = {}
    for i, pool in enumerate(spec.pools):
        if pool.name in seen:
            yield Problem(
                f"pools[{i}].name", f"duplicate pool name {pool.name!r} (also pools[{seen[pool.name]}])"
            )
        seen.setdefault(pool.name, i)
        yield from _pool_problems(spec, i, pool, catalog, model_names)
    clouds_used = {p.cloud for p in spec.pools}
    if "aws" in clouds_used and spec.model_cache.aws is None:
        yield Problem("model_cache.aws", "required: AWS pools read models and write checkpoints there")
    if "gcp" in clouds_used and spec.model_cache.gcp is None:
        yield Problem("model_cache.gcp", "required: GCP pools read models and write checkpoints there")
    seen_jobs: set[str] = set()
    for i, job in enumerate(spec.spot_recovery.jobs):
        at = f"spot_recovery.jobs[{i}]"
        if job.name in seen_jobs:
            yield Problem(f"{at}.name", f"duplicate job {job.name!r}")
        seen_jobs.add(job.name)
        job_pool = spec.pool(job.pool)
        if job_pool is None:
            known = ", ".join(p.name for p in spec.pools if p.cloud == "aws") or "none"
            yield Problem(f"{at}.pool", f"no pool {job.pool!r} (AWS pools: {known})")
        elif (why := unsupported(job_pool.cloud, Feature.SPOT_RECOVERY_JOBS)) is not None:
            yield Problem(f"{at}.pool", f"{job.pool!r} is a {job_pool.cloud.upper()} pool: {why}")
    for name, _ in spec.pricing.overrides.items():
        if catalog.instance_type("aws", name) is None and catalog.instance_type("gcp", name) is None:
            yield Problem(f"pricing.overrides.{name}", f"unknown instance or machine type {name!r}")


def _pool_problems(
    spec: EnvSpec, i: int, pool: Pool, catalog: Catalog, model_names: list[str]
) -> Iterator[Problem]:
    at = f"pools[{i}]"
    cloud = spec.clouds.aws if pool.cloud == "aws" else spec.clouds.gcp
    label = "AWS" if pool.cloud == "aws" else "GCP"
    if cloud is None:
        yield Problem(f"{at}.cloud", f"{pool.cloud!r} but clouds.{pool.cloud} is not configured")
    else:
        region = pool.region or cloud.region
        if pool.region is not None and pool.region != cloud.region:
            yield Problem(
                f"{at}.region",
                f"{pool.region!r} is not the env's {label} region {cloud.region!r} (one region per cloud per env)",
            )
        zone_re = rf"^{re.escape(region)}[a-z]$" if pool.cloud == "aws" else rf"^{re.escape(region)}-[a-z]$"
        for j, zone in enumerate(pool.zones):
            if not re.match(zone_re, zone):
                yield Problem(f"{at}.zones[{j}]", f"zone {zone!r} is not in region {region!r}")
    if len(set(pool.zones)) != len(pool.zones):
        yield Problem(f"{at}.zones", "lists a zone twice")

    itype = yield from _instance_type_problems(at, pool, catalog, label)

    if pool.min > pool.max:
        yield Problem(f"{at}.min", f"min ({pool.min}) is greater than max ({pool.max})")
    elif pool.desired is not None and not pool.min <= pool.desired <= pool.max:
        yield Problem(
            f"{at}.desired", f"desired ({pool.desired}) is outside min..max ({pool.min}..{pool.max})"
        )

    if pool.capacity != "spot" and pool.spot is not None:
        yield Problem(f"{at}.spot", f"only spot pools take spot settings (this pool is {pool.capacity})")
    if pool.capacity != "reserved" and pool.reservation is not None:
        yield Problem(
            f"{at}.reservation",
            f"only reserved pools take reservation settings (this pool is {pool.capacity})",
        )
    if pool.capacity == "reserved":
        res = pool.reservation_settings
        count = pool.reserved_instances
        if res.match == "capacity-reservations-only" and pool.max > count:
            yield Problem(
                f"{at}.max",
                f"max ({pool.max}) exceeds the reservation's instance_count ({count}); "
                "a capacity-reservations-only pool cannot launch outside it",
            )
        if res.capacity_block is not None and (why := unsupported(pool.cloud, Feature.CAPACITY_BLOCKS)):
            yield Problem(f"{at}.reservation.capacity_block", why)
        if res.match != "capacity-reservations-only" and (
            why := unsupported(pool.cloud, Feature.OPEN_RESERVATION_MATCH)
        ):
            yield Problem(f"{at}.reservation.match", why)
    if pool.spot is not None:
        yield from _spot_problems(at, pool, pool.spot, itype, catalog)
    if pool.distribution is not None and (why := unsupported(pool.cloud, Feature.GROUP_DISTRIBUTION)):
        yield Problem(f"{at}.distribution", why)
    if pool.model is not None and pool.model not in model_names:
        known = ", ".join(sorted(set(model_names))) or "none"
        yield Problem(f"{at}.model", f"{pool.model!r} is not in model_cache.models (known: {known})")
    for key in pool.tags:
        if key in RESERVED_TAG_KEYS:
            yield Problem(f"{at}.tags.{key}", "set by pyctl itself")
    for j, secret in enumerate(pool.boot_secrets):
        if (secret.ssm_parameter is None) == (secret.secrets_manager_secret is None):
            yield Problem(
                f"{at}.boot_secrets[{j}]", "set exactly one of ssm_parameter, secrets_manager_secret"
            )
        if why := unsupported(pool.cloud, Feature.BOOT_SECRETS):
            yield Problem(f"{at}.boot_secrets[{j}]", why)


def _instance_type_problems(
    at: str, pool: Pool, catalog: Catalog, label: str
) -> Generator[Problem, None, InstanceType | None]:
    """Yield the pool's type problems; return its resolved type (None when it has none)."""
    if pool.gpu is not None and catalog.gpu(pool.gpu) is None:
        yield Problem(f"{at}.gpu", f"unknown GPU {pool.gpu!r} (known: {', '.join(sorted(catalog.gpus))})")
        return None
    if pool.instance_type is None and pool.gpu is None:
        yield Problem(f"{at}.instance_type", "set instance_type, or gpu (with gpus_per_instance)")
        return None
    itype = resolve_instance_type(pool, catalog)
    if pool.instance_type is not None and itype is None:
        family = pool.instance_type.split(".")[0] if pool.cloud == "aws" else pool.instance_type.split("-")[0]
        same_family = sorted(n for n, t in catalog.instance_types[pool.cloud].items() if t.family == family)
        hint = f"known {family}: {', '.join(same_family)}" if same_family else "see `pyctl catalog`"
        yield Problem(f"{at}.instance_type", f"unknown {label} GPU type {pool.instance_type!r} ({hint})")
        return None
    if itype is None:
        count = pool.gpus_per_instance or 1
        yield Problem(f"{at}.gpus_per_instance", f"no {label} type carries {count} x {pool.gpu}")
        return None
    if pool.gpu is not None and itype.gpu != pool.gpu:
        yield Problem(f"{at}.gpu", f"{pool.gpu!r} does not match {itype.name}, which carries {itype.gpu}")
    if itype.attaches_accelerators:
        if pool.gpus_per_instance is None:
            yield Problem(
                f"{at}.gpus_per_instance", f"required for {itype.name} (GPUs are attached per pool)"
            )
        elif pool.gpus_per_instance not in itype.attachable_gpu_counts:
            counts = ", ".join(map(str, itype.attachable_gpu_counts))
            yield Problem(f"{at}.gpus_per_instance", f"{itype.name} takes {counts} x {itype.gpu}")
    elif pool.gpus_per_instance is not None and pool.gpus_per_instance != itype.gpu_count:
        yield Problem(
            f"{at}.gpus_per_instance",
            f"{itype.name} carries {itype.gpu_count} GPUs, not {pool.gpus_per_instance}",
        )
    return itype


# The spot settings a cloud may not take (pyctl.clouds.features).
_SPOT_FEATURES = {
    "instance_types": Feature.SPOT_INSTANCE_TYPES,
    "on_demand_base": Feature.SPOT_ON_DEMAND_BASE,
    "max_price": Feature.SPOT_MAX_PRICE,
    "termination_action": Feature.SPOT_TERMINATION_ACTION,
}


def _spot_problems(
    at: str, pool: Pool, spot: SpotSettings, itype: InstanceType | None, catalog: Catalog
) -> Iterator[Problem]:
    for field, feature in _SPOT_FEATURES.items():
        given = (
            spot.termination_action is not None
            if field == "termination_action"
            else field in spot.model_fields_set
        )
        if given and (why := unsupported(pool.cloud, feature)):
            yield Problem(f"{at}.spot.{field}", why)
    if spot.on_demand_base > pool.max:
        yield Problem(
            f"{at}.spot.on_demand_base", f"({spot.on_demand_base}) is greater than max ({pool.max})"
        )
    if itype is None:
        return
    for j, name in enumerate(spot.instance_types):
        other = catalog.instance_type(pool.cloud, name)
        if other is None:
            yield Problem(f"{at}.spot.instance_types[{j}]", f"unknown AWS GPU type {name!r}")
        elif (other.gpu, other.gpu_count) != (itype.gpu, itype.gpu_count):
            yield Problem(
                f"{at}.spot.instance_types[{j}]",
                f"{name} carries {other.gpu_count} x {other.gpu}, not {itype.gpu_count} x {itype.gpu} like {itype.name}",
            )


def resolve_instance_type(pool: Pool, catalog: Catalog) -> InstanceType | None:
    """The pool's instance/machine type: named, or the smallest type carrying its GPU."""
    if pool.instance_type is not None:
        return catalog.instance_type(pool.cloud, pool.instance_type)
    if pool.gpu is None:
        return None
    return catalog.default_type_for(pool.cloud, pool.gpu, pool.gpus_per_instance or 1)


def gpus_per_instance(pool: Pool, itype: InstanceType) -> int:
    return itype.gpu_count if itype.gpu_count is not None else (pool.gpus_per_instance or 1)
