#!/usr/bin/env python3
"""Regenerate pyctl/catalog/data/prices.json from the public AWS and GCP price lists.

    .venv/bin/python scripts/refresh_prices.py [--cloud aws|gcp|all] [--dry-run]

AWS: the Price List bulk API, one CSV per region (public, no credentials; us-east-1 is several GB, read as a
stream): https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/REGION/index.csv
Kept rows: on-demand, Linux, shared tenancy, no pre-installed software, capacity status `Used`, per hour.
AWS spot discounts are not in the bulk price list: the existing `spot_discounts.aws` are kept.

GCP: the Cloud Billing Catalog API (needs an API key: PYCTL_GCP_BILLING_API_KEY), Compute Engine service
6F81-5844-456A. A machine's price is the sum of its SKUs: vCPUs x core + GiB x RAM + GPUs x GPU (N1 machines
without GPUs; their T4s are priced per GPU under `gcp_accelerators`). Bundled local SSD is not added.
Spot discounts come from the same SKUs' Preemptible (Spot) prices.

Every type it cannot price keeps its current entry (and its older `as_of`); the script lists them. The
result is validated by pyctl's own schema before anything is written. Without network access it stops with
exit code 2 and leaves prices.json unchanged. Endpoints can be pointed elsewhere (tests, mirrors) with
PYCTL_AWS_PRICING_ENDPOINT and PYCTL_GCP_BILLING_ENDPOINT.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyctl.catalog import Catalog, InstanceType, load_catalog  # noqa: E402
from pyctl.catalog.prices import PRICES_FILE, dump_prices, parse_prices  # noqa: E402

PRICES_PATH = ROOT / "pyctl" / "catalog" / "data" / PRICES_FILE
AWS_ENDPOINT = "https://pricing.us-east-1.amazonaws.com"
AWS_CSV_PATH = "/offers/v1.0/aws/AmazonEC2/current/{region}/index.csv"
GCP_ENDPOINT = "https://cloudbilling.googleapis.com"
GCP_COMPUTE_SERVICE = "6F81-5844-456A"
TIMEOUT_S = 30

# SKU descriptions (before " running in <geography>") of each machine series' vCPU and RAM.
GCP_SERIES_SKUS = {
    "n1-standard": ("N1 Predefined Instance Core", "N1 Predefined Instance Ram"),
    "g2-standard": ("G2 Instance Core", "G2 Instance Ram"),
    "a2-highgpu": ("A2 Instance Core", "A2 Instance Ram"),
    "a2-ultragpu": ("A2 Instance Core", "A2 Instance Ram"),
    "a3-highgpu": ("A3 Instance Core", "A3 Instance Ram"),
    "a3-megagpu": ("A3 Mega Instance Core", "A3 Mega Instance Ram"),
    "a3-ultragpu": ("A3 Ultra Instance Core", "A3 Ultra Instance Ram"),
    "a4-highgpu": ("A4 Instance Core", "A4 Instance Ram"),
}
# SKU descriptions of each catalog GPU.
GCP_GPU_SKUS = {
    "t4": "Nvidia Tesla T4 GPU",
    "l4": "Nvidia L4 GPU",
    "a100-40gb": "Nvidia Tesla A100 GPU",
    "a100-80gb": "Nvidia Tesla A100 80GB GPU",
    "h100": "Nvidia H100 80GB GPU",
    "h100-mega": "Nvidia H100 80GB Mega GPU",
    "h200": "Nvidia H200 141GB GPU",
    "b200": "Nvidia B200 GPU",
}


class Unreachable(Exception):
    """A price list endpoint did not answer."""


def _open(url: str, label: str) -> Any:
    try:
        return urllib.request.urlopen(url, timeout=TIMEOUT_S)  # noqa: S310 - https endpoints or an explicit override
    except urllib.error.HTTPError as exc:
        raise Unreachable(f"{label}: {url.split('?')[0]} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"{label}: cannot reach {url.split('?')[0]} ({reason})") from None


# --- AWS ---------------------------------------------------------------------------------------------


def aws_on_demand_prices(lines: Iterable[str], wanted: set[str]) -> dict[str, float]:
    """Linux on-demand $/hour per instance type from one region's bulk price list CSV."""
    rows = csv.reader(lines)
    header: list[str] | None = None
    found: dict[str, set[float]] = {}
    for row in rows:
        if header is None:
            if row and row[0] == "SKU":  # the five lines before the header are metadata
                header = row
            continue
        rec = dict(zip(header, row, strict=False))
        name = rec.get("Instance Type", "")
        if name not in wanted or not _aws_plain_on_demand(rec):
            continue
        price = float(rec["PricePerUnit"])
        if price > 0:
            found.setdefault(name, set()).add(price)
    ambiguous = sorted(n for n, p in found.items() if len(p) > 1)
    if ambiguous:
        raise ValueError(f"aws: several Linux on-demand prices for {', '.join(ambiguous)}")
    return {name: prices.pop() for name, prices in found.items()}


def _aws_plain_on_demand(rec: dict[str, str]) -> bool:
    return (
        rec.get("TermType") == "OnDemand"
        and rec.get("Product Family", "").startswith("Compute Instance")
        and rec.get("Operating System") == "Linux"
        and rec.get("Tenancy") == "Shared"
        and rec.get("Pre Installed S/W") in ("NA", "")
        and rec.get("CapacityStatus") == "Used"
        and rec.get("Unit") == "Hrs"
        and rec.get("Currency") == "USD"
        and rec.get("MarketOption", "OnDemand") == "OnDemand"
    )


def refresh_aws(data: dict[str, Any], catalog: Catalog, regions: list[str], today: str) -> list[str]:
    """Update data['instance_types']['aws'] in place; return the types left as they were."""
    endpoint = os.environ.get("PYCTL_AWS_PRICING_ENDPOINT", AWS_ENDPOINT).rstrip("/")
    wanted = set(catalog.instance_types["aws"])
    by_type: dict[str, dict[str, float]] = {}
    for region in regions:
        url = endpoint + AWS_CSV_PATH.format(region=region)
        with _open(url, "aws") as resp:
            prices = aws_on_demand_prices(io.TextIOWrapper(resp, encoding="utf-8"), wanted)
        for name, price in prices.items():
            by_type.setdefault(name, {})[region] = price
    entries = data["instance_types"].setdefault("aws", {})
    for name, regional in by_type.items():
        entries[name] = {
            "on_demand_hourly": regional,
            "as_of": today,
            "source": f"AWS Price List bulk API ({endpoint}{AWS_CSV_PATH}), Linux on-demand, shared tenancy",
        }
    return sorted(wanted - by_type.keys())


# --- GCP ---------------------------------------------------------------------------------------------


def gcp_skus(endpoint: str, api_key: str) -> Iterator[dict[str, Any]]:
    """Every Compute Engine SKU, page by page."""
    token = ""
    while True:
        query = {"key": api_key, "pageSize": "5000", **({"pageToken": token} if token else {})}
        url = f"{endpoint}/v1/services/{GCP_COMPUTE_SERVICE}/skus?{urllib.parse.urlencode(query)}"
        with _open(url, "gcp") as resp:
            page = json.load(resp)
        yield from page.get("skus", [])
        token = page.get("nextPageToken", "")
        if not token:
            return


def _unit_price(sku: dict[str, Any]) -> float | None:
    for info in sku.get("pricingInfo", [])[:1]:
        for rate in info.get("pricingExpression", {}).get("tieredRates", []):
            price = rate.get("unitPrice", {})
            if price.get("currencyCode", "USD") == "USD" and rate.get("startUsageAmount", 0) == 0:
                return int(price.get("units") or 0) + int(price.get("nanos") or 0) / 1e9
    return None


def gcp_sku_prices(skus: Iterable[dict[str, Any]], region: str) -> dict[tuple[str, str], float]:
    """(description before ' running in', 'OnDemand' | 'Preemptible') -> $/unit-hour in `region`."""
    prices: dict[tuple[str, str], float] = {}
    for sku in skus:
        category = sku.get("category", {})
        usage = category.get("usageType")
        if category.get("resourceFamily") != "Compute" or usage not in ("OnDemand", "Preemptible"):
            continue
        if region not in sku.get("serviceRegions", []):
            continue
        desc = str(sku.get("description", "")).removeprefix("Spot Preemptible ").removeprefix("Preemptible ")
        if " running in " not in desc:
            continue
        price = _unit_price(sku)
        if price is not None:
            prices[(desc.split(" running in ")[0], usage)] = price
    return prices


def gcp_machine_price(itype: InstanceType, prices: dict[tuple[str, str], float], usage: str) -> float | None:
    """vCPUs x core + GiB x RAM (+ GPUs x GPU for accelerator-optimized types); None if a SKU is missing."""
    series = "-".join(itype.name.split("-")[:2])
    core_ram = GCP_SERIES_SKUS.get(series)
    if core_ram is None:
        return None
    core, ram = prices.get((core_ram[0], usage)), prices.get((core_ram[1], usage))
    if core is None or ram is None:
        return None
    total = itype.vcpus * core + itype.memory_gib * ram
    if itype.gpu_count:
        gpu = prices.get((GCP_GPU_SKUS.get(itype.gpu, ""), usage))
        if gpu is None:
            return None
        total += itype.gpu_count * gpu
    return round(total, 6)


def refresh_gcp(
    data: dict[str, Any], catalog: Catalog, regions: list[str], today: str, skus: list[dict[str, Any]]
) -> list[str]:
    """Update GCP machine types, accelerators and spot discounts in place; return what was left as is."""
    source = f"Google Cloud Billing Catalog API, service {GCP_COMPUTE_SERVICE} (Compute Engine), summed SKUs"
    by_region = {region: gcp_sku_prices(skus, region) for region in regions}
    entries = data["instance_types"].setdefault("gcp", {})
    kept = []
    spot_ratios: dict[str, float] = {}
    for name, itype in sorted(catalog.instance_types["gcp"].items()):
        regional = {}
        for region, prices in by_region.items():
            price = gcp_machine_price(itype, prices, "OnDemand")
            if price is not None:
                regional[region] = price
                spot = gcp_machine_price(itype, prices, "Preemptible")
                if spot is not None and itype.family not in spot_ratios:
                    spot_ratios[itype.family] = spot / price
        if not regional:
            kept.append(name)
            continue
        entries[name] = {"on_demand_hourly": regional, "as_of": today, "source": source}
    for gpu, desc in GCP_GPU_SKUS.items():
        regional = {r: p[(desc, "OnDemand")] for r, p in by_region.items() if (desc, "OnDemand") in p}
        if gpu in data.get("gcp_accelerators", {}) and regional:
            data["gcp_accelerators"][gpu] = {"on_demand_hourly": regional, "as_of": today, "source": source}
    spot_discounts = data["spot_discounts"].setdefault("gcp", {})
    for family, ratio in spot_ratios.items():
        spot_discounts[family] = {
            "percent": round(100 * (1 - ratio), 1),
            "as_of": today,
            "source": f"{source}: Spot (Preemptible) vs on-demand price of the family's first machine type",
        }
    return kept


# --- main --------------------------------------------------------------------------------------------


def _regions(data: dict[str, Any], cloud: str) -> list[str]:
    """The regions the current data prices for `cloud` (refresh keeps the same coverage)."""
    found = {r for e in data["instance_types"].get(cloud, {}).values() for r in e["on_demand_hourly"]}
    return sorted(found | {data["reference_regions"][cloud]})


def refresh(data: dict[str, Any], cloud: str, today: str) -> dict[str, list[str]]:
    catalog = load_catalog()
    kept: dict[str, list[str]] = {}
    if cloud in ("aws", "all"):
        kept["aws"] = refresh_aws(data, catalog, _regions(data, "aws"), today)
    if cloud in ("gcp", "all"):
        api_key = os.environ.get("PYCTL_GCP_BILLING_API_KEY", "")
        if not api_key:
            raise Unreachable(
                "gcp: set PYCTL_GCP_BILLING_API_KEY (an API key allowed to call the Cloud Billing API)"
            )
        endpoint = os.environ.get("PYCTL_GCP_BILLING_ENDPOINT", GCP_ENDPOINT).rstrip("/")
        skus = list(gcp_skus(endpoint, api_key))
        kept["gcp"] = refresh_gcp(data, catalog, _regions(data, "gcp"), today, skus)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cloud", choices=["aws", "gcp", "all"], default="all")
    parser.add_argument(
        "--output", type=Path, default=PRICES_PATH, help="Where to write (default: the shipped file)."
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="Print the new prices.json instead of writing it."
    )
    args = parser.parse_args(argv)
    data = json.loads(PRICES_PATH.read_text(encoding="utf-8"))
    try:
        kept = refresh(data, args.cloud, dt.date.today().isoformat())
    except Unreachable as exc:
        print(f"refresh_prices: {exc}", file=sys.stderr)
        print(
            "refresh_prices: needs network access to the public price lists; prices.json unchanged",
            file=sys.stderr,
        )
        return 2
    text = dump_prices(parse_prices(json.dumps(data)))
    for cloud, names in kept.items():
        if names:
            print(f"{cloud}: no price found, entry kept as it was: {', '.join(names)}", file=sys.stderr)
    if args.dry_run:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
