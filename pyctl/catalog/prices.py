"""Hourly prices for the catalog's GPU types: list data in `data/prices.json`, validated once, and the
lookup that turns (cloud, type, region, capacity kind) into the price an env pays.

How a price is chosen (docs/cost.md says the same for users):
- an env's `pricing.overrides.TYPE.<kind>_hourly` wins as it is (a negotiated or private price);
- otherwise the list on-demand price of the env's region, or of the cloud's reference region when the
  data has no figure for that region (the quote's `basis` says so);
- GCP N1 types price the machine plus each attached GPU (`gcp_accelerators`);
- reserved capacity (AWS capacity reservations, GCP specific reservations) is billed at the on-demand rate;
  the env's `pricing.discount_percent` applies to on-demand and reserved list prices, never to spot;
- spot is the list on-demand price less the family's typical spot discount (`spot_discounts`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pyctl.catalog import Catalog, Cloud, InstanceType, load_catalog
from pyctl.core.cost import (
    GPU_CAPACITY_OUTPUT,
    CostChange,
    EnvOutlook,
    HourlyPrice,
    PoolUsage,
    Pricer,
    expected_instances,
    plan_cost_change,
    plan_regions,
    pool_outlook,
    spot_on_demand_count,
    worst_case_usage,
)
from pyctl.core.plan import Plan

if TYPE_CHECKING:
    from pyctl.spec import EnvSpec, Pool, Pricing

PRICES_FILE = "prices.json"
Kind = Literal["reserved", "on_demand", "spot"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListPrice(_Strict):
    """On-demand $/hour by region for one instance/machine type (or one GCP accelerator)."""

    on_demand_hourly: dict[str, float] = Field(min_length=1)
    as_of: dt.date
    source: str = Field(min_length=10)
    # True when the figure is the authors' estimate rather than a list price they could confirm.
    estimate: bool = False
    note: str | None = None

    @field_validator("on_demand_hourly")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for region, price in value.items():
            if price <= 0:
                raise ValueError(f"price for {region} must be positive, got {price}")
        return value


class SpotDiscount(_Strict):
    percent: float = Field(ge=0, lt=100)
    as_of: dt.date
    source: str = Field(min_length=10)
    estimate: bool = False


class PriceBook(_Strict):
    schema_version: Literal[1]
    currency: Literal["USD"]
    reference_regions: dict[Cloud, str]
    instance_types: dict[Cloud, dict[str, ListPrice]]
    gcp_accelerators: dict[str, ListPrice] = {}
    spot_discounts: dict[Cloud, dict[str, SpotDiscount]]

    def list_price(self, itype: InstanceType, region: str, gpus: int) -> HourlyPrice | None:
        """List on-demand $/hour of one instance in `region` (reference region if the data lacks it)."""
        entry = self.instance_types.get(itype.cloud, {}).get(itype.name)
        if entry is None:
            return None
        parts = [entry]
        if itype.attaches_accelerators:
            accel = self.gcp_accelerators.get(itype.gpu)
            if accel is None:
                return None
            parts.append(accel)
        reference = self.reference_regions[itype.cloud]
        used = region if all(region in p.on_demand_hourly for p in parts) else reference
        if not all(used in p.on_demand_hourly for p in parts):
            return None
        hourly = entry.on_demand_hourly[used]
        if itype.attaches_accelerators:
            hourly += gpus * parts[1].on_demand_hourly[used]
        basis = f"list {used}" if used == region else f"list {used} (no {region} price in data)"
        return HourlyPrice(
            hourly=hourly,
            basis=basis,
            as_of=min(p.as_of for p in parts).isoformat(),
            estimate=any(p.estimate for p in parts),
        )

    def spot_discount(self, itype: InstanceType) -> SpotDiscount | None:
        return self.spot_discounts.get(itype.cloud, {}).get(itype.family)


def _validate(data: object) -> PriceBook:
    try:
        return PriceBook.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{PRICES_FILE}: {where}: {first['msg']}") from None


def parse_prices(text: str) -> PriceBook:
    """Validate a prices.json document (the shipped one, or one the refresh script is about to write)."""
    return _validate(json.loads(text))


def dump_prices(book: PriceBook) -> str:
    """The canonical text of prices.json: sorted keys, two-space indent, trailing newline."""
    data = book.model_dump(mode="json", exclude_defaults=True)
    data["schema_version"], data["currency"] = book.schema_version, book.currency
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


@cache
def load_prices() -> PriceBook:
    """The shipped price data, validated once per process."""
    text = resources.files("pyctl.catalog").joinpath("data", PRICES_FILE).read_text(encoding="utf-8")
    return parse_prices(text)


def quote(
    itype: InstanceType,
    kind: Kind,
    *,
    region: str,
    gpus: int,
    pricing: Pricing | None = None,
    book: PriceBook | None = None,
) -> HourlyPrice | None:
    """What one instance of `itype` costs per hour as `kind` capacity, for an env with `pricing`."""
    book = book or load_prices()
    override = pricing.overrides.get(itype.name) if pricing is not None else None
    fixed = getattr(override, f"{kind}_hourly", None) if override is not None else None
    if fixed is not None:
        return HourlyPrice(hourly=float(fixed), basis=f"override pricing.overrides.{itype.name}", as_of="")
    listed = book.list_price(itype, region, gpus)
    if listed is None:
        return None
    if kind == "spot":
        spot = book.spot_discount(itype)
        if spot is None:
            return None
        return HourlyPrice(
            hourly=listed.hourly * (1 - spot.percent / 100),
            basis=f"{listed.basis}, typical spot -{spot.percent:g}%",
            as_of=listed.as_of,
            estimate=listed.estimate or spot.estimate,
        )
    discount = pricing.discount_percent if pricing is not None else 0.0
    if not discount:
        return listed
    return HourlyPrice(
        hourly=listed.hourly * (1 - discount / 100),
        basis=f"{listed.basis}, env discount -{discount:g}%",
        as_of=listed.as_of,
        estimate=listed.estimate,
    )


def env_pricer(
    regions: Mapping[str, str],
    pricing: Pricing | None = None,
    *,
    catalog: Catalog | None = None,
    book: PriceBook | None = None,
) -> Pricer:
    """A `(cloud, instance_type, kind, gpus_per_instance) -> HourlyPrice | None` for one env's regions."""
    cat = catalog or load_catalog()
    prices = book or load_prices()

    def price(cloud: str, instance_type: str, kind: str, gpus: int) -> HourlyPrice | None:
        if cloud not in ("aws", "gcp") or kind not in ("reserved", "on_demand", "spot"):
            return None
        itype = cat.instance_type(cloud, instance_type)  # type: ignore[arg-type]
        if itype is None:
            return None
        region = regions.get(cloud, prices.reference_regions[cloud])  # type: ignore[index]
        return quote(itype, kind, region=region, gpus=gpus, pricing=pricing, book=prices)  # type: ignore[arg-type]

    return price


def plan_cost(plan: Plan, spec: EnvSpec | None = None, *, output: str = GPU_CAPACITY_OUTPUT) -> CostChange:
    """The plan's monthly cost change per pool: its `output` before/after, priced in the regions of the
    plan's `aws`/`gcp` variables with the env's pricing and expected hours (730 h where unknown)."""
    change = plan.output_changes.get(output)
    if change is None or not change.after_known:
        return CostChange(())
    hours = {}
    if spec is not None:
        hours = {
            p.name: p.expected_hours_per_month for p in spec.pools if p.expected_hours_per_month is not None
        }
    price = env_pricer(plan_regions(plan.variables), spec.pricing if spec is not None else None)
    return plan_cost_change(change.before, change.after, price, hours)


def hourly_price_table(cloud: Cloud, region: str | None, pricing: Pricing | None = None) -> dict[str, float]:
    """`TYPE` (on-demand) and `TYPE:spot` -> $/hour for every catalog type of `cloud` in `region` (None: the
    price book's reference region), with the env's overrides and discount. Unpriced types are left out,
    never guessed. The watchdog reports idle reserved capacity and savings with it."""
    catalog = load_catalog()
    price = env_pricer({cloud: region} if region else {}, pricing, catalog=catalog)
    table: dict[str, float] = {}
    for name, itype in catalog.instance_types[cloud].items():
        for kind, key in (("on_demand", name), ("spot", f"{name}:spot")):
            found = price(cloud, name, kind, itype.gpu_count or 1)
            if found is not None:
                table[key] = round(found.hourly, 4)
    return table


def spec_regions(spec: EnvSpec) -> dict[str, str]:
    """Each configured cloud's region from env.yaml."""
    regions = {}
    if spec.clouds.aws is not None:
        regions["aws"] = spec.clouds.aws.region
    if spec.clouds.gcp is not None:
        regions["gcp"] = spec.clouds.gcp.region
    return regions


def _spot_on_demand(pool: Pool, instances: int) -> int:
    """Instances of an AWS spot pool bought on demand (`spot.on_demand_base` and the share above it)."""
    if pool.capacity != "spot" or pool.cloud != "aws" or pool.spot is None:
        return 0
    return spot_on_demand_count(
        instances, pool.spot.on_demand_base, pool.spot.on_demand_percentage_above_base
    )


def pool_usage_pairs(
    spec: EnvSpec, catalog: Catalog | None = None
) -> list[tuple[PoolUsage, PoolUsage, bool]]:
    """Per pool of env.yaml: (expected usage, worst-case usage at max, scaled from zero)."""
    from pyctl.spec import gpus_per_instance, resolve_instance_type

    cat = catalog or load_catalog()
    pairs = []
    for pool in spec.pools:
        itype = resolve_instance_type(pool, cat)
        if itype is None:  # validation guarantees a type; this guards direct callers
            raise ValueError(f"pool {pool.name}: no instance type resolved")
        reserved = pool.reserved_instances if pool.capacity == "reserved" else None
        instances = expected_instances(pool.desired_size, pool.max, pool.expected_hours_per_month)
        expected = PoolUsage(
            name=pool.name,
            cloud=pool.cloud,
            capacity_kind=pool.capacity,
            instance_type=itype.name,
            gpus_per_instance=gpus_per_instance(pool, itype),
            instances=instances,
            hours_per_month=pool.expected_hours_per_month,
            reserved_instances=reserved,
            on_demand_instances=_spot_on_demand(pool, instances),
        )
        worst = worst_case_usage(
            expected, max_instances=max(pool.max, instances), on_demand_at_max=_spot_on_demand(pool, pool.max)
        )
        pairs.append((expected, worst, instances != pool.desired_size))
    return pairs


def env_outlook(spec: EnvSpec, catalog: Catalog | None = None) -> EnvOutlook:
    """The env's monthly cost as expected and in the worst case, per pool, priced with its pricing.

    The plan summary shows it with `pyctl.core.cost.outlook_text(env_outlook(target.spec))`."""
    price = env_pricer(spec_regions(spec), spec.pricing, catalog=catalog)
    return EnvOutlook(
        tuple(
            pool_outlook(expected, worst, price, scaled_from_zero=zero)
            for expected, worst, zero in pool_usage_pairs(spec, catalog)
        )
    )
