"""`pyctl catalog`: the GPU catalog with list prices (the rows come from `pyctl.catalog.listing`)."""

from __future__ import annotations

import click

from pyctl.commands import JSON_HELP


@click.command("catalog")
@click.option(
    "--cloud", type=click.Choice(["aws", "gcp"], case_sensitive=False), default=None, help="Only this cloud."
)
@click.option(
    "--gpu", default=None, help="Only types carrying this GPU, any case (e.g. H100, a100 for both A100s)."
)
@click.option("--aws-region", default=None, help="Price AWS types in this region (default: us-east-1).")
@click.option("--gcp-region", default=None, help="Price GCP types in this region (default: us-central1).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def catalog_cmd(
    cloud: str | None, gpu: str | None, aws_region: str | None, gcp_region: str | None, as_json: bool
) -> None:
    """List the GPU catalog: GPUs, the instance/machine types that carry them, list $/hour.

    Prices are list on-demand and estimated spot in the region (the reference region when the data has no
    figure for it); `~` marks an estimate. GCP N1 prices are with the fewest attachable GPUs.
    """
    import json

    from pyctl.catalog.listing import catalog_listing, listing_json
    from pyctl.core.cost import money
    from pyctl.output import console, table

    listing = catalog_listing(cloud, gpu, aws_region, gcp_region)
    if as_json:
        click.echo(json.dumps(listing_json(listing), indent=2))
        return
    cat, regions = listing.catalog, listing.regions
    tbl = table(
        "cloud", "type", "gpu", "gpus", "vram/gpu GiB", "vcpus", "memory GiB", "local nvme GB",
        "on-demand $/h", "spot $/h", copy="type",
    )  # fmt: skip
    for row in listing.rows:
        t = row.itype
        shown = [
            "-" if price is None else ("~" if price.estimate else "") + money(price.hourly)
            for price in row.prices.values()
        ]
        tbl.add_row(
            row.cloud,
            t.name,
            t.gpu,
            "/".join(map(str, row.counts)),
            str(cat.gpus[t.gpu].vram_gib),
            str(t.vcpus),
            f"{t.memory_gib:g}",
            str(t.local_nvme_gb),
            *shown,
        )
    out = console()
    out.print(tbl)
    out.print(
        f"prices: list, {regions['aws']} / {regions['gcp']}, before discounts; ~ estimated (docs/cost.md)"
    )
