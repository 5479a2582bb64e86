"""The shipped price data is complete and honest; lookups apply overrides, discounts and spot as documented."""

from __future__ import annotations

import json

import pytest

from pyctl.catalog import load_catalog
from pyctl.catalog.prices import PRICES_FILE, dump_prices, load_prices, parse_prices, quote
from pyctl.spec import PriceOverride, Pricing

CATALOG = load_catalog()
BOOK = load_prices()
ALL_TYPES = [t for types in CATALOG.instance_types.values() for t in types.values()]


@pytest.mark.parametrize("itype", ALL_TYPES, ids=lambda t: f"{t.cloud}:{t.name}")
def test_every_catalog_type_has_gpus_vram_and_a_dated_sourced_price(itype):
    assert itype.gpu_count or itype.attachable_gpu_counts
    assert CATALOG.gpus[itype.gpu].vram_gib > 0
    entry = BOOK.instance_types[itype.cloud][itype.name]
    assert entry.on_demand_hourly and all(p > 0 for p in entry.on_demand_hourly.values())
    assert entry.as_of.year >= 2024 and entry.source
    if itype.attaches_accelerators:  # GCP N1: the GPU is priced on its own
        accelerator = BOOK.gcp_accelerators[itype.gpu]
        assert accelerator.as_of and accelerator.source
    assert BOOK.spot_discount(itype) is not None
    # the reference region is always priced, so every type has a fallback figure
    assert BOOK.list_price(itype, BOOK.reference_regions[itype.cloud], 1) is not None


def test_no_price_for_a_type_the_catalog_does_not_know():
    for cloud, entries in BOOK.instance_types.items():
        assert set(entries) <= set(CATALOG.instance_types[cloud]), cloud


def test_estimates_say_so_in_a_note():
    for entries in BOOK.instance_types.values():
        for name, entry in entries.items():
            if entry.estimate:
                assert entry.note and "estimate" in entry.note, name


def test_the_shipped_file_is_in_canonical_form():
    from importlib import resources

    text = resources.files("pyctl.catalog").joinpath("data", PRICES_FILE).read_text()
    assert dump_prices(parse_prices(text)) == text


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["instance_types"]["aws"]["g5.xlarge"].pop("as_of"), "as_of"),
        (
            lambda d: d["instance_types"]["aws"]["g5.xlarge"]["on_demand_hourly"].update({"us-east-1": -1}),
            "positive",
        ),
        (lambda d: d["spot_discounts"]["aws"]["g5"].update(percent=120), "percent"),
        (lambda d: d["instance_types"]["aws"]["g5.xlarge"].update(source=""), "source"),
    ],
)
def test_invalid_price_documents_are_refused_naming_the_field(mutate, message):
    data = json.loads(dump_prices(BOOK))
    mutate(data)
    with pytest.raises(ValueError, match=message):
        parse_prices(json.dumps(data))


def aws(name):
    return CATALOG.instance_types["aws"][name]


def gcp(name):
    return CATALOG.instance_types["gcp"][name]


def test_on_demand_list_price_in_the_env_region():
    price = quote(aws("g5.xlarge"), "on_demand", region="us-west-2", gpus=1)
    assert price is not None
    assert price.hourly == 1.006
    assert price.basis == "list us-west-2"
    assert price.as_of == "2025-06-01"


def test_a_region_missing_from_the_data_falls_back_to_the_reference_region_and_says_so():
    price = quote(aws("g5.xlarge"), "on_demand", region="eu-west-1", gpus=1)
    assert price is not None
    assert price.hourly == 1.006
    assert price.basis == "list us-east-1 (no eu-west-1 price in data)"


def test_gcp_n1_price_is_the_machine_plus_each_attached_t4():
    price = quote(gcp("n1-standard-8"), "on_demand", region="us-central1", gpus=2)
    assert price is not None
    assert price.hourly == pytest.approx(0.379998 + 2 * 0.35)


def test_env_discount_applies_to_on_demand_and_reserved_never_to_spot():
    pricing = Pricing(discount_percent=10)
    on_demand = quote(aws("p5.48xlarge"), "on_demand", region="us-east-1", gpus=8, pricing=pricing)
    reserved = quote(aws("p5.48xlarge"), "reserved", region="us-east-1", gpus=8, pricing=pricing)
    spot = quote(aws("p5.48xlarge"), "spot", region="us-east-1", gpus=8, pricing=pricing)
    assert on_demand is not None and reserved is not None and spot is not None
    assert on_demand.hourly == reserved.hourly == pytest.approx(55.04 * 0.9)
    assert "env discount -10%" in on_demand.basis
    percent = BOOK.spot_discounts["aws"]["p5"].percent
    assert spot.hourly == pytest.approx(55.04 * (1 - percent / 100))
    assert spot.estimate  # spot discounts are typical figures, flagged as estimates


def test_an_override_is_the_price_paid_as_it_is():
    pricing = Pricing(discount_percent=10, overrides={"p5.48xlarge": PriceOverride(reserved_hourly=31.5)})
    reserved = quote(aws("p5.48xlarge"), "reserved", region="us-east-1", gpus=8, pricing=pricing)
    assert reserved is not None
    assert reserved.hourly == 31.5
    assert reserved.basis == "override pricing.overrides.p5.48xlarge"
    # kinds the override does not name keep the list price (with the discount)
    on_demand = quote(aws("p5.48xlarge"), "on_demand", region="us-east-1", gpus=8, pricing=pricing)
    assert on_demand is not None and on_demand.hourly == pytest.approx(55.04 * 0.9)
