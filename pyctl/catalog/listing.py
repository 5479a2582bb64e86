"""`pyctl catalog`'s rows: the catalog's instance types, filtered by cloud and GPU, with list prices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyctl.catalog import Catalog, InstanceType, load_catalog
from pyctl.catalog.prices import Kind, PriceBook, load_prices, quote
from pyctl.core.cost import HourlyPrice
from pyctl.errors import PyctlError
from pyctl.output import natural_key

PRICE_KINDS: tuple[Kind, ...] = ("on_demand", "spot")


@dataclass(frozen=True)
class ListingRow:
    cloud: str
    itype: InstanceType
    counts: tuple[int, ...]  # GPUs per node: fixed, or the attachable counts (GCP N1)
    prices: dict[Kind, HourlyPrice | None]  # per PRICE_KINDS, None without a price


@dataclass(frozen=True)
class Listing:
    catalog: Catalog
    regions: dict[str, str]  # per cloud, the region priced
    rows: list[ListingRow]


def gpu_filter(catalog: Catalog, gpu: str | None) -> set[str] | None:
    """GPU ids named by --gpu, case-insensitively: the id itself, else every `<name>-*` (a100: both sizes)."""
    if gpu is None:
        return None
    wanted = gpu.strip().lower()
    if wanted in catalog.gpus:
        return {wanted}
    family = {g for g in catalog.gpus if g.startswith(f"{wanted}-")}
    if not family:
        raise PyctlError(f"--gpu: unknown GPU {gpu!r} (known: {', '.join(sorted(catalog.gpus))})")
    return family


def catalog_listing(
    cloud: str | None,
    gpu: str | None,
    aws_region: str | None,
    gcp_region: str | None,
    *,
    catalog: Catalog | None = None,
    book: PriceBook | None = None,
) -> Listing:
    """Every catalog type of `cloud` (all clouds for None) carrying `gpu`, priced in the given regions (the
    price data's reference regions by default), by cloud and natural type order."""
    cat, prices = catalog or load_catalog(), book or load_prices()
    gpus = gpu_filter(cat, gpu)
    regions = {
        "aws": aws_region or prices.reference_regions["aws"],
        "gcp": gcp_region or prices.reference_regions["gcp"],
    }
    rows = []
    for cl, types in cat.instance_types.items():
        if cloud not in (None, cl):
            continue
        for name in sorted(types, key=natural_key):
            t = types[name]
            if gpus is not None and t.gpu not in gpus:
                continue
            counts = (t.gpu_count,) if t.gpu_count else t.attachable_gpu_counts
            quoted = {
                kind: quote(t, kind, region=regions[cl], gpus=min(counts), book=prices)
                for kind in PRICE_KINDS
            }
            rows.append(ListingRow(cl, t, counts, quoted))
    return Listing(cat, regions, rows)


def listing_json(listing: Listing) -> list[dict[str, Any]]:
    cat = listing.catalog
    return [
        {
            "cloud": row.cloud,
            "instance_type": row.itype.name,
            "gpu": row.itype.gpu,
            "gpu_architecture": cat.gpus[row.itype.gpu].architecture,
            "gpus": list(row.counts),
            "vram_gib_per_gpu": cat.gpus[row.itype.gpu].vram_gib,
            "vcpus": row.itype.vcpus,
            "memory_gib": row.itype.memory_gib,
            "local_nvme_gb": row.itype.local_nvme_gb,
            "region": listing.regions[row.cloud],
            **{
                f"{kind}_hourly": None if price is None else round(price.hourly, 4)
                for kind, price in row.prices.items()
            },
        }
        for row in listing.rows
    ]
