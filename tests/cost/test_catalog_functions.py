"""The catalog's functions behind `pyctl size` and `pyctl catalog`, called directly (the commands only
parse options, call one of these and print)."""

from __future__ import annotations

import pytest

from pyctl.catalog.listing import catalog_listing, listing_json
from pyctl.catalog.sizing import SizeQuery, size_model
from pyctl.errors import PyctlError


def test_size_model_answers_the_query_cheapest_first_per_cloud():
    sizing = size_model(SizeQuery(model="llama-3-70b", precision="fp16", context=4096, batch=1))
    assert sizing.model.source == "--model llama-3-70b" and sizing.model.precision == "fp16"
    assert round(sizing.need.weights / 1e9) == 141
    for options in sizing.report.options.values():
        assert options
        hourly = [o.hourly for o in options]
        assert hourly == sorted(hourly)
        assert all(o.fit.headroom_bytes >= 0 for o in options)
    rejected = {r.itype.name for rejected in sizing.report.rejected.values() for r in rejected}
    assert "g5.xlarge" in rejected  # one 24 GiB A10G cannot hold 141 GB of weights


def test_size_model_refuses_a_config_and_a_model_together(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(PyctlError, match="--config and --model"):
        size_model(SizeQuery(config=tmp_path / "config.json", model="llama-3-8b"))


def test_catalog_listing_filters_by_gpu_family_and_prices_each_row():
    listing = catalog_listing(None, "A100", None, "europe-west4")
    assert listing.rows and {row.itype.gpu for row in listing.rows} == {"a100-40gb", "a100-80gb"}
    assert listing.regions["gcp"] == "europe-west4"
    rows = listing_json(listing)
    assert [r["instance_type"] for r in rows] == [row.itype.name for row in listing.rows]
    assert all(r["on_demand_hourly"] is None or r["on_demand_hourly"] > 0 for r in rows)
    with pytest.raises(PyctlError, match="unknown GPU"):
        catalog_listing(None, "z9000", None, None)
