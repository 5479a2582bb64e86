"""The env.yaml model: loading, validation against the GPU catalog, errors with the field path.

Two passes: pydantic checks structure and types (unknown keys, wrong types, ranges); `_semantic_problems`
then checks what needs the whole document and the catalog (GPU and instance types, counts, regions and
zones, pool names, model references) and the providers' limits (tag and label rules, template syntax,
paths). Every problem becomes one line `FILE: PATH: message (line N)`, with any value it quotes escaped and
cut (`shown_value`). Before either pass, the file itself must be a regular UTF-8 file under a size cap, and
the YAML loader bounds nesting and alias expansion and refuses non-scalar and duplicate keys.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from pyctl.catalog import Catalog, InstanceType, load_catalog
from pyctl.clouds.features import Feature, unsupported
from pyctl.errors import PyctlError

ENV_FILE = "env.yaml"

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")]
AwsRegion = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")]
GcpRegion = Annotated[str, StringConstraints(pattern=r"^[a-z]+-[a-z]+\d$")]
BucketName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
CapacityKind = Literal["reserved", "on_demand", "spot"]
# pydantic's `pattern` is a Rust regex: `^...$` matches the whole text (a trailing newline fails), unlike
# Python's `re.match` with `$`. Checks written in Python below use `re.fullmatch`.

# Sane maxima: a typo of a few digits (or 10^30) fails here, not at the cloud's API or on the bill.
MAX_INSTANCES = 10_000  # instances in one pool / reservation
MAX_HOURLY_USD = 1_000.0  # $/hour of one instance (the largest GPU instances list at about $100)
MAX_DAYS = 36_500
# PutRetentionPolicy's retentionInDays values (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html),
# as infra/modules/aws-gpu-watchdog checks them at plan time: refused here before any plan.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
# env.yaml itself: a regular file, at most this size, UTF-8, nested at most this deep, with at most this
# many nodes once aliases are expanded (a "billion laughs" document is a few lines long).
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_EXPANDED_NODES = 100_000


class Strict(BaseModel):
    # No NaN or infinity anywhere: YAML's `.nan` / `.inf` are floats, and `inf > 0` passes a `gt=0` bound.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: object, info: ValidationInfo) -> object:
        """pydantic takes `true` as 1 for an int field (`max: true`): a number must be written as one."""
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation in (int, float, int | None, float | None):
                raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
        return value


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
    # A name or a self link (https://www.googleapis.com/compute/v1/projects/P/regions/R/subnetworks/N).
    network: str = Field(min_length=1, max_length=256)
    subnetwork: str = Field(min_length=1, max_length=256)


class Clouds(Strict):
    aws: AwsCloud | None = None
    gcp: GcpCloud | None = None


class S3Backend(Strict):
    bucket: BucketName
    key: str = Field(min_length=1, max_length=1024)  # S3 object keys: at most 1,024 bytes
    region: AwsRegion
    use_lockfile: bool = True
    kms_key_id: str | None = Field(default=None, min_length=1, max_length=2048)


class GcsBackend(Strict):
    bucket: BucketName
    prefix: str = Field(min_length=1, max_length=512)


class Backend(Strict):
    s3: S3Backend | None = None
    gcs: GcsBackend | None = None


class SpotSettings(Strict):
    # Further instance types of equal capability (same GPU and count) for the mixed-instances policy (AWS).
    instance_types: list[Annotated[str, StringConstraints(max_length=64)]] = Field(default=[], max_length=20)
    allocation_strategy: Literal[
        "price-capacity-optimized", "capacity-optimized", "capacity-optimized-prioritized", "lowest-price"
    ] = "price-capacity-optimized"
    # The fallback floor: instances always bought on demand before any spot (AWS).
    on_demand_base: int = Field(default=0, ge=0, le=MAX_INSTANCES)
    on_demand_percentage_above_base: int = Field(default=0, ge=0, le=100)
    max_price: float | None = Field(default=None, gt=0, le=MAX_HOURLY_USD)
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
    instance_count: int | None = Field(default=None, ge=1, le=MAX_INSTANCES)
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
                raise ValueError(f"{shown_value(cidr)} is not a CIDR block ({exc})") from None
            if net.prefixlen == 0:
                raise ValueError(
                    f"{shown_value(cidr)} opens the pool to the whole internet; name the networks that need it"
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
    region: str | None = Field(default=None, max_length=32)
    zones: list[Annotated[str, StringConstraints(max_length=40)]] = Field(default=[], max_length=32)
    gpu: str | None = Field(default=None, max_length=64)
    instance_type: str | None = Field(default=None, max_length=64)
    gpus_per_instance: int | None = Field(default=None, ge=1, le=16)
    capacity: CapacityKind
    min: int = Field(default=0, ge=0, le=MAX_INSTANCES)
    desired: int | None = Field(default=None, ge=0, le=MAX_INSTANCES)
    max: int = Field(ge=0, le=MAX_INSTANCES)
    spot: SpotSettings | None = None
    reservation: ReservationSettings | None = None
    model: str | None = Field(default=None, max_length=128)
    root_volume_gb: int = Field(default=200, ge=50, le=16384)
    auto_shutdown: bool = True
    # A spot instance from a one-time request cannot be stopped: may the watchdog terminate it instead?
    watchdog_may_terminate: bool = False
    distribution: Literal["zonal", "regional"] | None = None
    expected_hours_per_month: float | None = Field(default=None, ge=0, le=744)
    ingress: Ingress = Ingress()
    boot_secrets: list[BootSecret] = []
    tags: dict[str, str] = Field(default={}, max_length=64)

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
    noncurrent_version_days: int = Field(default=30, ge=1, le=MAX_DAYS)


class GcpModelCache(Strict):
    bucket: BucketName
    location: str = Field(default="US", min_length=1, max_length=64)
    kms_key_name: str | None = Field(default=None, pattern=r"^projects/.+/cryptoKeys/.+$")
    noncurrent_version_days: int = Field(default=30, ge=1, le=MAX_DAYS)


class ModelCache(Strict):
    aws: AwsModelCache | None = None
    gcp: GcpModelCache | None = None
    models: list[CachedModel] = []
    # Where the node-side NVMe cache is mounted.
    nvme_path: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9._/-]+$")] = "/mnt/nvme"


class WatchdogMetric(Strict):
    namespace: str = Field(default="CWAgent", min_length=1, max_length=255)
    name: str = Field(default="nvidia_smi_utilization_gpu", min_length=1, max_length=255)


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
    log_retention_days: int = Field(default=30, ge=1, le=MAX_DAYS)


class SpotJob(Strict):
    """A standalone training job on spot: launched from its pool's launch template, replaced on interruption."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    pool: Name


class SpotRecovery(Strict):
    enabled: bool = True
    max_interruptions: int = Field(default=3, ge=1, le=1000)
    window_hours: float = Field(default=6, gt=0, le=8760)
    cooldown_hours: float = Field(default=2, gt=0, le=8760)
    checkpoint_retention: int = Field(default=3, ge=1, le=1000)
    # Jobs that run outside an Auto Scaling group; ASG pools are replaced by capacity rebalancing.
    jobs: list[SpotJob] = []


class PriceOverride(Strict):
    on_demand_hourly: float | None = Field(default=None, gt=0, le=MAX_HOURLY_USD)
    spot_hourly: float | None = Field(default=None, gt=0, le=MAX_HOURLY_USD)
    reserved_hourly: float | None = Field(default=None, gt=0, le=MAX_HOURLY_USD)


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
    tags: dict[str, str] = Field(default={}, max_length=64)

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
    if as_path.is_dir():
        return as_path / ENV_FILE
    if os.path.lexists(as_path) and (env.endswith((".yaml", ".yml")) or "/" in env or os.sep in env):
        return as_path  # a file (or a FIFO, a device, a symlink loop: refused with its reason when read)
    if "/" in env or os.sep in env:
        raise PyctlError(f"{env}: no such env directory")
    envs_dir = (
        Path(os.environ["PYCTL_ENVS_DIR"])
        if "PYCTL_ENVS_DIR" in os.environ
        else find_repo_root() / "infra" / "envs"
    )
    candidate = envs_dir / env / ENV_FILE
    if not os.path.lexists(candidate):
        known = sorted(p.parent.name for p in envs_dir.glob(f"*/{ENV_FILE}"))
        raise PyctlError(f"{envs_dir}: unknown env {shown_value(env)} (known: {', '.join(known) or 'none'})")
    return candidate


def load_env(env: str) -> LoadedEnv:
    """Load and validate an env; raise PyctlError listing every problem, one per line."""
    path = env_file(env)
    return LoadedEnv(spec=load_spec_file(path), path=path)


def display_path(path: Path) -> str:
    try:
        # abspath, not resolve: a symlinked env.yaml is shown by its own name (and a symlink loop is no error here)
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_spec_file(path: Path) -> EnvSpec:
    shown = display_path(path)
    text = read_env_text(path, shown)
    data = _parse_yaml(text, shown)
    return validate_spec(data, shown, lines=lambda: key_lines(text))


# Byte-order marks of encodings that are not UTF-8 (YAML would allow them; env.yaml is UTF-8 only).
_FOREIGN_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)


def read_env_text(path: Path, shown: str) -> str:
    """env.yaml's text: a regular file of at most MAX_FILE_BYTES, UTF-8 (a UTF-8 BOM is dropped).

    Opened with O_NONBLOCK and checked with fstat before any read, so a FIFO or a device named env.yaml is
    refused at once instead of blocking (or reading /dev/zero forever)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise PyctlError(f"{shown}: cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PyctlError(
                f"{shown}: not a regular file ({_file_kind(info.st_mode)}); env.yaml must be a file"
            )
        if info.st_size > MAX_FILE_BYTES:
            raise PyctlError(f"{shown}: {info.st_size} bytes; env.yaml may be at most {MAX_FILE_BYTES} bytes")
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PyctlError(f"{shown}: cannot read: {exc.strerror}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(raw) > MAX_FILE_BYTES:  # grew since fstat
        raise PyctlError(
            f"{shown}: more than {MAX_FILE_BYTES} bytes; env.yaml may be at most {MAX_FILE_BYTES}"
        )
    for bom, encoding in _FOREIGN_BOMS:
        if raw.startswith(bom):
            raise PyctlError(f"{shown}: encoded as {encoding} (byte-order mark); save env.yaml as UTF-8")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise PyctlError(
            f"{shown}: line {line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save env.yaml as UTF-8"
        ) from None


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")


def validate_spec(
    data: Any,
    shown: str,
    catalog: Catalog | None = None,
    lines: Callable[[], Mapping[str, int]] | None = None,
) -> EnvSpec:
    """`lines` (built only when there are problems) maps field paths to env.yaml lines for the messages."""
    if data is None:
        raise PyctlError(f"{shown}: empty; expected a mapping (env, clouds, backend, pools, ...)")
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
    # One problem per field: the first found (a `${` in a tag is not also a bad tag character).
    problems: list[Problem] = []
    for problem in _semantic_problems(spec, catalog or load_catalog()):
        if all(p.path != problem.path for p in problems):
            problems.append(problem)
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
                here = key_path(path, key.value)
                found[here] = key.start_mark.line + 1
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found[f"{path}[{i}]"] = item.start_mark.line + 1
                walk(item, f"{path}[{i}]")

    try:
        root = yaml.compose(text, Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, RecursionError):
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
    """SafeLoader that refuses what PyYAML accepts silently or unboundedly: duplicate keys (it keeps the
    last one), non-scalar keys, nesting deeper than MAX_DEPTH (it recurses: thousands of levels end in a
    RecursionError), and documents whose aliases expand to more than MAX_EXPANDED_NODES nodes."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose tree, aliases expanded, exceeds MAX_EXPANDED_NODES (or refers to itself)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise yaml.composer.ComposerError(None, None, "an alias refers to itself", node.start_mark)
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        active.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"expands to more than {MAX_EXPANDED_NODES} values (aliases repeated inside aliases)",
                node.start_mark,
            )
        sizes[key] = total
        return total

    size(root)


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            kind = "mapping" if isinstance(key_node, yaml.MappingNode) else "list"
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain value, not a {kind}", key_node.start_mark
            )
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            # The error's own mark is this (second) place; the message names the first.
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {shown_value(key)} (first at line {seen[key]})",
                key_node.start_mark,
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
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, ESC and other controls)
        before = text[: exc.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
        raise PyctlError(
            f"{shown}: line {line}, column {column}: the character {shown_value(char)} is not allowed in YAML"
        ) from None
    except yaml.YAMLError as exc:
        raise PyctlError(f"{shown}: invalid YAML: {exc}") from None
    except RecursionError:  # a guard: compose_node bounds the depth first
        raise PyctlError(f"{shown}: nested too deep") from None


# How a value or key from env.yaml appears in a message: escaped like repr (newlines, control and
# zero-width characters visible as \n, \x07, \u200b) and cut, so one problem is always one short line.
MAX_SHOWN = 80


def shown_value(value: object, limit: int = MAX_SHOWN) -> str:
    text = repr(value)
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    if len(text) > limit:
        size = f" ({len(value)} characters)" if isinstance(value, str) else ""
        text = text[: limit - 3] + "..." + size
    return text


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/=+@-]{0,62}")


def key_path(parent: str, key: object) -> str:
    """`parent.key`, or `parent['a key']` when the key is not a plain name (escaped and cut)."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{shown_value(key, 40)}]"


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else key_path(out, part)
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
            f"expected a string, got the number {shown_value(error['input'])}: quote it in env.yaml "
            f'("{shown_value(error["input"])}"); unquoted YAML numbers lose leading zeros'
        )
    if kind == "int_parsing_size":
        return f"{shown_value(error['input'])} is too large for a whole number here"
    if kind == "int_from_float":
        return f"expected a whole number, got {shown_value(error['input'])}"
    msg = str(error["msg"])
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        return f"{shown_value(error['input'])} is not valid here (expected {error['ctx']['pattern']})"
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
    return f" (did you mean {shown_value(close[0])}?)" if close else ""


def _semantic_problems(spec: EnvSpec, catalog: Catalog) -> Iterator[Problem]:
    if spec.clouds.aws is None and spec.clouds.gcp is None:
        yield Problem("clouds", "configure at least one of aws, gcp")
    if (spec.backend.s3 is None) == (spec.backend.gcs is None):
        yield Problem("backend", "set exactly one of s3, gcs")
    for key in spec.tags:
        if key in RESERVED_TAG_KEYS:
            yield Problem(
                key_path("tags", key), f"set by pyctl itself (reserved: {', '.join(RESERVED_TAG_KEYS)})"
            )
    yield from _template_problems(spec)
    yield from _tag_problems(spec)
    if spec.clouds.aws is not None and spec.watchdog.log_retention_days not in LOG_RETENTION_DAYS:
        yield Problem(
            "watchdog.log_retention_days",
            f"{spec.watchdog.log_retention_days} is not a retention CloudWatch Logs accepts "
            f"({', '.join(map(str, LOG_RETENTION_DAYS))})",
        )
    yield from _path_problems(spec)
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
                f"pools[{i}].name",
                f"duplicate pool name {shown_value(pool.name)} (also pools[{seen[pool.name]}])",
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
            yield Problem(f"{at}.name", f"duplicate job {shown_value(job.name)}")
        seen_jobs.add(job.name)
        job_pool = spec.pool(job.pool)
        if job_pool is None:
            known = ", ".join(p.name for p in spec.pools if p.cloud == "aws") or "none"
            yield Problem(f"{at}.pool", f"no pool {shown_value(job.pool)} (AWS pools: {known})")
        elif (why := unsupported(job_pool.cloud, Feature.SPOT_RECOVERY_JOBS)) is not None:
            yield Problem(f"{at}.pool", f"{shown_value(job.pool)} is a {job_pool.cloud.upper()} pool: {why}")
    for name, _ in spec.pricing.overrides.items():
        if catalog.instance_type("aws", name) is None and catalog.instance_type("gcp", name) is None:
            yield Problem(
                key_path("pricing.overrides", name), f"unknown instance or machine type {shown_value(name)}"
            )


def _pool_problems(
    spec: EnvSpec, i: int, pool: Pool, catalog: Catalog, model_names: list[str]
) -> Iterator[Problem]:
    at = f"pools[{i}]"
    cloud = spec.clouds.aws if pool.cloud == "aws" else spec.clouds.gcp
    label = "AWS" if pool.cloud == "aws" else "GCP"
    if cloud is None:
        yield Problem(f"{at}.cloud", f"{shown_value(pool.cloud)} but clouds.{pool.cloud} is not configured")
    else:
        region = pool.region or cloud.region
        if pool.region is not None and pool.region != cloud.region:
            yield Problem(
                f"{at}.region",
                f"{shown_value(pool.region)} is not the env's {label} region {shown_value(cloud.region)} (one region per cloud per env)",
            )
        # fullmatch: `re.match` with `$` would accept a zone with a trailing newline.
        zone_re = rf"{re.escape(region)}[a-z]" if pool.cloud == "aws" else rf"{re.escape(region)}-[a-z]"
        for j, zone in enumerate(pool.zones):
            if not re.fullmatch(zone_re, zone):
                yield Problem(
                    f"{at}.zones[{j}]", f"zone {shown_value(zone)} is not in region {shown_value(region)}"
                )
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
        yield Problem(
            f"{at}.model", f"{shown_value(pool.model)} is not in model_cache.models (known: {known})"
        )
    for key in pool.tags:
        if key in RESERVED_TAG_KEYS:
            yield Problem(key_path(f"{at}.tags", key), "set by pyctl itself")
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
        yield Problem(
            f"{at}.gpu", f"unknown GPU {shown_value(pool.gpu)} (known: {', '.join(sorted(catalog.gpus))})"
        )
        return None
    if pool.instance_type is None and pool.gpu is None:
        yield Problem(f"{at}.instance_type", "set instance_type, or gpu (with gpus_per_instance)")
        return None
    itype = resolve_instance_type(pool, catalog)
    if pool.instance_type is not None and itype is None:
        family = pool.instance_type.split(".")[0] if pool.cloud == "aws" else pool.instance_type.split("-")[0]
        same_family = sorted(n for n, t in catalog.instance_types[pool.cloud].items() if t.family == family)
        hint = f"known {family}: {', '.join(same_family)}" if same_family else "see `pyctl catalog`"
        yield Problem(
            f"{at}.instance_type", f"unknown {label} GPU type {shown_value(pool.instance_type)} ({hint})"
        )
        return None
    if itype is None:
        count = pool.gpus_per_instance or 1
        yield Problem(f"{at}.gpus_per_instance", f"no {label} type carries {count} x {pool.gpu}")
        return None
    if pool.gpu is not None and itype.gpu != pool.gpu:
        yield Problem(
            f"{at}.gpu", f"{shown_value(pool.gpu)} does not match {itype.name}, which carries {itype.gpu}"
        )
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
            yield Problem(f"{at}.spot.instance_types[{j}]", f"unknown AWS GPU type {shown_value(name)}")
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


# --- provider limits on tags and labels ------------------------------------------------------------------

# AWS tags, https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_Tags.html#tag-restrictions (and the
# Tag Editor guide, https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html): at most 50 tags
# per resource; a key 1-128 Unicode characters, a value 0-256; letters, numbers, spaces and `_ . : / = + - @`;
# the `aws:` prefix is reserved for AWS (its tags do not count against the 50).
AWS_MAX_TAGS = 50
AWS_TAG_KEY_MAX = 128
AWS_TAG_VALUE_MAX = 256
_AWS_TAG_PUNCTUATION = frozenset("_.:/=+-@")
_AWS_TAG_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No", "Zs"})
# The tags pyctl itself puts on a pool's resources (infra/modules/aws-gpu-pool/locals.tf, render.env_tags)
# and the ones the watchdog and spot recovery add at run time: they come out of the 50.
PYCTL_AWS_TAGS = frozenset(
    {
        "Name", "Env", "ManagedBy", "CostCenter", "Pool", "CapacityKind", "AutoShutdown",
        "pyctl:env", "pyctl:pool", "pyctl:capacity", "pyctl:gpu", "pyctl:spot-terminate", "pyctl:job",
        "pyctl:spot-fallback", "pyctl:keep-until", "pyctl:watchdog-acted", "pyctl:watchdog-warned",
        "pyctl:replaces",
    }
)  # fmt: skip
AWS_USER_TAGS_MAX = AWS_MAX_TAGS - len(PYCTL_AWS_TAGS)

# GCP labels, https://cloud.google.com/compute/docs/labeling-resources#requirements: at most 64 per resource;
# keys 1-63 characters, starting with a lowercase letter; values 0-63; lowercase letters, digits, `_` and
# `-`. The GCP stack turns tags into labels (infra/stacks/gcp/locals.tf: CamelCase -> snake_case, lowercase,
# other characters `_`, cut to 63, keys not starting with a letter dropped): a tag that would be cut, dropped
# or collide with another is refused here instead.
GCP_MAX_LABELS = 64
GCP_LABEL_MAX = 63
# infra/modules/gcp-gpu-pool/locals.tf (pyctl_labels) and the watchdog's own labels.
PYCTL_GCP_LABELS = 10
GCP_USER_LABELS_MAX = GCP_MAX_LABELS - PYCTL_GCP_LABELS


def _aws_tag_char_ok(c: str) -> bool:
    # Unicode letters, numbers and spaces (Z*, but not the line and paragraph separators), or the punctuation.
    return c in _AWS_TAG_PUNCTUATION or (unicodedata.category(c) in _AWS_TAG_CATEGORIES)


def _aws_tag_problems(at: str, tags: Mapping[str, str]) -> Iterator[Problem]:
    for key, value in tags.items():
        here = key_path(at, key)
        if not 1 <= len(key) <= AWS_TAG_KEY_MAX:
            yield Problem(here, f"an AWS tag key has 1 to {AWS_TAG_KEY_MAX} characters (this has {len(key)})")
        elif key.lower().startswith("aws:"):
            yield Problem(here, "the aws: prefix is reserved by AWS")
        elif key.startswith("pyctl:"):
            yield Problem(here, "the pyctl: prefix is reserved for the tags pyctl writes itself")
        elif bad := [c for c in key if not _aws_tag_char_ok(c)]:
            yield Problem(
                here,
                f"AWS tag keys allow letters, digits, spaces and _ . : / = + - @, not {shown_value(bad[0])}",
            )
        if len(value) > AWS_TAG_VALUE_MAX:
            yield Problem(
                here, f"an AWS tag value has at most {AWS_TAG_VALUE_MAX} characters (this has {len(value)})"
            )
        elif bad := [c for c in value if not _aws_tag_char_ok(c)]:
            yield Problem(
                here,
                f"AWS tag values allow letters, digits, spaces and _ . : / = + - @, not {shown_value(bad[0])}",
            )


def _label_key(tag: str) -> str:
    """The GCP label the GCP stack makes of a tag key (infra/stacks/gcp/locals.tf), before the 63 cut."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", tag)).lower()


def _gcp_label_problems(at: str, tags: Mapping[str, str], also: Mapping[str, str]) -> Iterator[Problem]:
    """`also`: the env's tags, merged with a pool's on its resources (a collision there is a problem too)."""
    labels: dict[str, str] = {_label_key(k): k for k in also}
    for key, value in tags.items():
        here = key_path(at, key)
        label = _label_key(key)
        if not re.match(r"[A-Za-z]", key):
            yield Problem(here, "a GCP label key must start with a letter (the tag would be dropped on GCP)")
        elif len(label) > GCP_LABEL_MAX:
            yield Problem(
                here, f"as a GCP label the key has {len(label)} characters; at most {GCP_LABEL_MAX}"
            )
        elif label in labels and labels[label] != key:
            yield Problem(
                here, f"becomes the GCP label {shown_value(label)}, like the tag {shown_value(labels[label])}"
            )
        labels.setdefault(label, key)
        if len(value) > GCP_LABEL_MAX:
            yield Problem(
                here, f"a GCP label value has at most {GCP_LABEL_MAX} characters (this has {len(value)})"
            )


def _tag_problems(spec: EnvSpec) -> Iterator[Problem]:
    aws_used = spec.clouds.aws is not None
    gcp_used = spec.clouds.gcp is not None
    if aws_used:
        yield from _aws_tag_problems("tags", spec.tags)
    if gcp_used:
        yield from _gcp_label_problems("tags", spec.tags, {})
    for i, pool in enumerate(spec.pools):
        at = f"pools[{i}].tags"
        merged = {**spec.tags, **pool.tags}
        if pool.cloud == "aws":
            yield from _aws_tag_problems(at, pool.tags)
            if len(spec.tags) <= AWS_USER_TAGS_MAX < len(merged):
                yield Problem(
                    at,
                    f"{len(merged)} tags with the env's; AWS allows {AWS_MAX_TAGS} per resource and pyctl "
                    f"writes {len(PYCTL_AWS_TAGS)} itself: at most {AWS_USER_TAGS_MAX}",
                )
        else:
            yield from _gcp_label_problems(at, pool.tags, spec.tags)
            if len(merged) > GCP_USER_LABELS_MAX:
                yield Problem(
                    at,
                    f"{len(merged)} labels with the env's tags; GCP allows {GCP_MAX_LABELS} per resource and "
                    f"pyctl writes {PYCTL_GCP_LABELS} itself: at most {GCP_USER_LABELS_MAX}",
                )
    if aws_used and len(spec.tags) > AWS_USER_TAGS_MAX:
        yield Problem(
            "tags",
            f"{len(spec.tags)} tags; at most {AWS_USER_TAGS_MAX} (AWS allows {AWS_MAX_TAGS} per resource, pyctl writes {len(PYCTL_AWS_TAGS)})",
        )


# --- values rendered into HCL, and paths --------------------------------------------------------------

# Terraform reads `${...}` and `%{...}` in an HCL string as a template (backend.hcl, the rendered root);
# nothing in env.yaml is meant as one, so any value (or key) holding either is refused.
_TEMPLATE = re.compile(r"[$%]\{")


def _walk_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            here = key_path(path, key)
            if isinstance(key, str):
                yield here, key
            yield from _walk_strings(item, here)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk_strings(item, f"{path}[{i}]")


def _template_problems(spec: EnvSpec) -> Iterator[Problem]:
    seen: set[str] = set()
    for path, text in _walk_strings(spec.model_dump(exclude_defaults=True), ""):
        if _TEMPLATE.search(text) and path not in seen:
            seen.add(path)
            yield Problem(
                path, f"{shown_value(text)}: '${{' and '%{{' are Terraform template syntax; not allowed"
            )


def path_problem(value: str, *, absolute: bool) -> str | None:
    """Why a slash-separated path from env.yaml is refused (None: fine): `..` or `.` segments, empty
    segments, and an absolute path where a relative one is meant (or the reverse)."""
    if absolute != value.startswith("/"):
        return "must be an absolute path" if absolute else "must be a relative path (no leading /)"
    segments = value.strip("/").split("/")
    if any(seg in ("..", ".") for seg in segments):
        return "a '..' or '.' segment is not allowed"
    if "" in segments:
        return "an empty segment ('//') is not allowed"
    return None


def _path_problems(spec: EnvSpec) -> Iterator[Problem]:
    paths: list[tuple[str, str | None, bool]] = [
        ("model_cache.nvme_path", spec.model_cache.nvme_path, True),
        (
            "watchdog.notify.slack_webhook_ssm_parameter",
            spec.watchdog.notify.slack_webhook_ssm_parameter,
            True,
        ),
    ]
    if spec.backend.s3 is not None:
        paths.append(("backend.s3.key", spec.backend.s3.key, False))
    if spec.backend.gcs is not None:
        paths.append(("backend.gcs.prefix", spec.backend.gcs.prefix, False))
    for i, pool in enumerate(spec.pools):
        for j, secret in enumerate(pool.boot_secrets):
            paths.append((f"pools[{i}].boot_secrets[{j}].ssm_parameter", secret.ssm_parameter, True))
    for where, value, absolute in paths:
        if value is not None and (why := path_problem(value, absolute=absolute)) is not None:
            yield Problem(where, f"{shown_value(value)}: {why}")
