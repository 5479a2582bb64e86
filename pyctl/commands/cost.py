"""`pyctl size` (which GPU types fit a model, cheapest first) and `pyctl cost` (an env's monthly cost).

The click commands parse options and call `size_options` / `env_cost_report`; the arithmetic lives in
pyctl/core/sizing.py and pyctl/core/cost.py, the prices in pyctl/catalog/prices.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pyctl.core.cost import EnvCost, PoolUsage, cost_per_million_tokens, env_cost, money
from pyctl.core.sizing import (
    BYTES_PER_PARAM,
    DEFAULT_PRECISION,
    GB,
    KNOWN_MODELS,
    Fit,
    ModelShape,
    Requirement,
    explain_no_fit,
    fit_on_node,
    parse_params,
    precision_unsupported,
    requirement,
)
from pyctl.errors import PyctlError
from pyctl.output import natural_key

if TYPE_CHECKING:  # pydantic models load lazily, so `pyctl --help` stays fast
    from pyctl.catalog import Catalog, InstanceType
    from pyctl.catalog.prices import PriceBook
    from pyctl.spec import LoadedEnv

ENV_HELP = "Env name under infra/envs/, or a directory holding env.yaml."


# --- size --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeOption:
    itype: InstanceType
    fit: Fit
    hourly: float
    basis: str
    estimate: bool


@dataclass(frozen=True)
class Rejected:
    """A catalog type the model cannot be served on, and why, in one line."""

    itype: InstanceType
    reason: str


@dataclass(frozen=True)
class SizeReport:
    options: dict[str, list[SizeOption]]  # per cloud, cheapest first
    rejected: dict[str, list[Rejected]]  # per cloud, by type name


@dataclass(frozen=True)
class SizedModel:
    shape: ModelShape
    precision: str
    source: str  # where the shape came from: a --model name, a config.json, or the options


def model_shape(
    model: str | None,
    params: str | None,
    layers: int | None,
    kv_heads: int | None,
    head_dim: int | None,
    base: ModelShape | None = None,
) -> ModelShape:
    """The shape from `--model` (or `base`, from a config.json), explicit options taking precedence."""
    if model is not None:
        base = KNOWN_MODELS.get(model.lower())
        if base is None:
            raise PyctlError(
                f"--model: unknown model {model!r} (known: {', '.join(KNOWN_MODELS)}); "
                "for any other model pass --config path/to/config.json"
            )
    try:
        count = parse_params(params) if params is not None else (base.params if base else None)
    except ValueError as exc:
        raise PyctlError(f"--params: {exc}") from None
    given = {
        "--params": count,
        "--layers": layers if layers is not None else (base.layers if base else None),
        "--kv-heads": kv_heads if kv_heads is not None else (base.kv_heads if base else None),
        "--head-dim": head_dim if head_dim is not None else (base.head_dim if base else None),
    }
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise PyctlError(
            f"{', '.join(missing)}: needed for the KV cache; pass --config with the model's config.json "
            "(a Hugging Face model directory works too), --model NAME, or the missing options"
        )
    return ModelShape(
        params=float(given["--params"]),  # type: ignore[arg-type]
        layers=int(given["--layers"]),  # type: ignore[arg-type]
        kv_heads=int(given["--kv-heads"]),  # type: ignore[arg-type]
        head_dim=int(given["--head-dim"]),  # type: ignore[arg-type]
    )


def sized_model(opts: dict[str, Any]) -> SizedModel:
    """The shape and precision from `--config` / `--model` / the shape options of `pyctl size`."""
    base, precision, source = None, None, "options"
    if opts.get("config") is not None:
        if opts["model"] is not None:
            raise PyctlError("--config and --model: give one of them")
        from pyctl.hf_config import load_model

        loaded = load_model(opts["config"])
        base, precision = loaded.model.shape, loaded.model.precision
        counted = "counted from safetensors" if loaded.params_counted else "estimated from the config"
        source = f"{loaded.source} (parameters {counted})"
    elif opts["model"] is not None:
        source = f"--model {opts['model']}"
    shape = model_shape(
        opts["model"], opts["params"], opts["layers"], opts["kv_heads"], opts["head_dim"], base=base
    )
    return SizedModel(shape, opts["precision"] or precision or DEFAULT_PRECISION, source)


def size_options(
    need: Requirement,
    *,
    precision: str,
    regions: dict[str, str],
    min_headroom_percent: float = 0.0,
    catalog: Catalog | None = None,
    book: PriceBook | None = None,
) -> SizeReport:
    """Per cloud, every priced type that runs `precision` and holds the model, cheapest $/hour first;
    every other type with the reason it was left out."""
    from pyctl.catalog import load_catalog
    from pyctl.catalog.prices import load_prices, quote

    cat, prices = catalog or load_catalog(), book or load_prices()
    found: dict[str, list[SizeOption]] = {}
    rejected: dict[str, list[Rejected]] = {}
    for cloud, types in cat.instance_types.items():
        options, left_out = [], []
        for itype in sorted(types.values(), key=lambda t: natural_key(t.name)):
            gpu = cat.gpus[itype.gpu]
            unsupported = precision_unsupported(gpu.architecture, precision)
            if unsupported is not None:
                left_out.append(Rejected(itype, f"{gpu.id}: {unsupported}"))
                continue
            counts = (itype.gpu_count,) if itype.gpu_count else itype.attachable_gpu_counts
            fit = fit_on_node(
                need, vram_gib=gpu.vram_gib, gpu_counts=counts, min_headroom_percent=min_headroom_percent
            )
            if fit is None:
                why = explain_no_fit(need, vram_gib=gpu.vram_gib, gpu_counts=counts)
                if min_headroom_percent:
                    why += f" and {min_headroom_percent:g}% headroom"
                left_out.append(Rejected(itype, f"{gpu.id}: {why}"))
                continue
            price = quote(itype, "on_demand", region=regions[cloud], gpus=fit.gpus_in_node, book=prices)
            if price is None:
                left_out.append(Rejected(itype, f"no on-demand price for {itype.name} in the price data"))
                continue
            options.append(SizeOption(itype, fit, price.hourly, price.basis, price.estimate))
        found[cloud] = sorted(options, key=lambda o: (o.hourly, o.fit.gpus, natural_key(o.itype.name)))
        rejected[cloud] = left_out
    return SizeReport(found, rejected)


def _size_json(model: SizedModel, need: Requirement, report: SizeReport, top: int) -> Any:
    return {
        "model": {**model.shape.__dict__, "precision": model.precision, "source": model.source},
        "weights_gb": round(need.weights / GB, 3),
        "kv_cache_gb": round(need.kv_cache / GB, 3),
        "options": {
            cloud: [
                {
                    "instance_type": o.itype.name,
                    "gpu": o.itype.gpu,
                    "gpus_needed": o.fit.gpus,
                    "gpus_in_node": o.fit.gpus_in_node,
                    "on_demand_hourly": round(o.hourly, 4),
                    "price_basis": o.basis,
                    "estimate": o.estimate,
                    "per_gpu_gb": round(o.fit.per_gpu_bytes / GB, 3),
                    "headroom_gb_per_gpu": round(o.fit.headroom_bytes / GB, 3),
                    "headroom_percent": round(o.fit.headroom_percent, 1),
                }
                for o in opts[:top]
            ]
            for cloud, opts in report.options.items()
        },
        "rejected": {
            cloud: [{"instance_type": r.itype.name, "gpu": r.itype.gpu, "reason": r.reason} for r in rej]
            for cloud, rej in report.rejected.items()
        },
    }


@click.command("size")
@click.option(
    "--config",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="A Hugging Face config.json, or a model directory holding one: any model's shape and precision.",
)
@click.option("--model", default=None, help=f"A known model shape: {', '.join(KNOWN_MODELS)}.")
@click.option("--params", default=None, help="Parameter count, e.g. 70B, 8.03B, 500M.")
@click.option(
    "--precision",
    type=click.Choice(list(BYTES_PER_PARAM)),
    default=None,
    help=f"Weight format [default: the config's torch_dtype / quantization_config, else {DEFAULT_PRECISION}].",
)
@click.option(
    "--context", type=click.IntRange(min=1), default=4096, show_default=True, help="Tokens per sequence."
)
@click.option(
    "--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Concurrent sequences."
)
@click.option("--layers", type=click.IntRange(min=1), default=None, help="Transformer layers.")
@click.option("--kv-heads", type=click.IntRange(min=1), default=None, help="Key/value heads (GQA groups).")
@click.option("--head-dim", type=click.IntRange(min=1), default=None, help="Dimension of one attention head.")
@click.option(
    "--min-headroom",
    type=click.FloatRange(0, 99),
    default=0.0,
    show_default=True,
    help="Free GPU memory to keep, %.",
)
@click.option(
    "--top", type=click.IntRange(min=1), default=5, show_default=True, help="Types to list per cloud."
)
@click.option(
    "--explain", is_flag=True, help="Also list every type left out, with the reason (one line each)."
)
@click.option("--aws-region", default=None, help="Price AWS types in this region (default: us-east-1).")
@click.option("--gcp-region", default=None, help="Price GCP types in this region (default: us-central1).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of a table (always with `rejected`)."
)
def size_cmd(**opts: Any) -> None:
    """Which GPU types fit a model (weights + KV cache + overhead), cheapest on-demand $/hour first.

    Types whose GPU cannot run the precision (bf16 needs Ampere or newer, fp8 Ada/Hopper or newer) are
    left out. GPUs needed is the tensor-parallel degree across the GPUs of one node. Formulas: docs/cost.md.
    """
    from pyctl.catalog.prices import load_prices

    model = sized_model(opts)
    need = requirement(model.shape, precision=model.precision, context=opts["context"], batch=opts["batch"])
    book = load_prices()
    regions = {
        "aws": opts["aws_region"] or book.reference_regions["aws"],
        "gcp": opts["gcp_region"] or book.reference_regions["gcp"],
    }
    report = size_options(
        need, precision=model.precision, regions=regions, min_headroom_percent=opts["min_headroom"], book=book
    )
    if opts["as_json"]:
        click.echo(json.dumps(_size_json(model, need, report, opts["top"]), indent=2))
        return
    _print_size(model, need, report, opts["top"], opts["explain"])


def _print_size(model: SizedModel, need: Requirement, report: SizeReport, top: int, explain: bool) -> None:
    from pyctl.output import console, table

    out = console()
    out.print(
        f"{model.shape.params / 1e9:.2f}B parameters in {model.precision} ({model.source}): "
        f"weights {need.weights / GB:.1f} GB + KV cache {need.kv_cache / GB:.2f} GB "
        "(+10% activations, +1 GiB runtime per GPU)"
    )
    tbl = table("cloud", "type", "gpu", "gpus needed", "$/hour", "per GPU GB", "headroom/GPU", copy="type")
    for cloud, opts in report.options.items():
        if not opts:
            tbl.add_row(cloud, "[red]nothing fits on one node[/]", "", "", "", "", "")
        for o in opts[:top]:
            tbl.add_row(
                cloud,
                o.itype.name,
                o.itype.gpu,
                f"{o.fit.gpus} of {o.fit.gpus_in_node}",
                ("~" if o.estimate else "") + money(o.hourly),
                f"{o.fit.per_gpu_bytes / GB:.1f}",
                f"{o.fit.headroom_bytes / GB:.1f} GB ({o.fit.headroom_percent:.0f}%)",
            )
    out.print(tbl)
    out.print("~ estimated price (see docs/cost.md); prices are list on-demand, before discounts")
    rejected = [(cloud, r) for cloud, rej in report.rejected.items() for r in rej]
    if not rejected:
        return
    if not explain:
        precision = sorted({r.itype.gpu for _, r in rejected if "support on" in r.reason})
        hint = f"; no {model.precision} on {', '.join(precision)}" if precision else ""
        out.print(f"{len(rejected)} types left out{hint} (--explain lists each with its reason)")
        return
    out.print("Left out:")
    for cloud, r in rejected:
        out.print(f"  {cloud} {r.itype.name}: {r.reason}", soft_wrap=True)


# --- cost --------------------------------------------------------------------------------------------


def pool_usages(loaded: LoadedEnv, catalog: Catalog | None = None) -> list[PoolUsage]:
    """What each pool of the env runs in a month, from env.yaml."""
    from pyctl.catalog import load_catalog
    from pyctl.spec import ReservationSettings, SpotSettings, gpus_per_instance, resolve_instance_type

    cat = catalog or load_catalog()
    usages = []
    for pool in loaded.spec.pools:
        itype = resolve_instance_type(pool, cat)
        if itype is None:  # validation guarantees a type; this guards direct callers
            raise PyctlError(f"pool {pool.name}: no instance type resolved")
        reserved = None
        if pool.capacity == "reserved":
            res = pool.reservation or ReservationSettings()
            reserved = res.instance_count if res.instance_count is not None else pool.max
        on_demand = 0
        if pool.capacity == "spot" and pool.cloud == "aws":
            spot = pool.spot or SpotSettings()
            above = max(pool.desired_size - spot.on_demand_base, 0)
            on_demand = min(spot.on_demand_base, pool.desired_size) + (
                above * spot.on_demand_percentage_above_base // 100
            )
        usages.append(
            PoolUsage(
                name=pool.name,
                cloud=pool.cloud,
                capacity_kind=pool.capacity,
                instance_type=itype.name,
                gpus_per_instance=gpus_per_instance(pool, itype),
                instances=pool.desired_size,
                hours_per_month=pool.expected_hours_per_month,
                reserved_instances=reserved,
                on_demand_instances=on_demand,
            )
        )
    return usages


def env_regions(loaded: LoadedEnv) -> dict[str, str]:
    clouds = loaded.spec.clouds
    regions = {}
    if clouds.aws is not None:
        regions["aws"] = clouds.aws.region
    if clouds.gcp is not None:
        regions["gcp"] = clouds.gcp.region
    return regions


def env_cost_report(loaded: LoadedEnv) -> EnvCost:
    from pyctl.catalog.prices import env_pricer

    price = env_pricer(env_regions(loaded), loaded.spec.pricing)
    return env_cost(pool_usages(loaded), price)


def _cost_json(name: str, report: EnvCost, tps: float | None) -> Any:
    pools = []
    for p in report.pools:
        entry: dict[str, Any] = {
            "pool": p.pool.name,
            "cloud": p.pool.cloud,
            "capacity": p.pool.capacity_kind,
            "instance_type": p.pool.instance_type,
            "instances": p.pool.instances,
            "monthly": None if p.missing else round(p.monthly, 2),
            "estimate": p.estimate,
            "missing_price": p.missing or None,
            "lines": [
                {
                    "kind": line.kind,
                    "instances": line.instances,
                    "hours": line.hours,
                    "hourly": round(line.price.hourly, 4),
                    "basis": line.price.basis,
                    "as_of": line.price.as_of or None,
                    "monthly": round(line.monthly, 2),
                    **({"cost_per_million_tokens": _per_million(line.price.hourly, tps)} if tps else {}),
                }
                for line in p.lines
            ],
        }
        pools.append(entry)
    return {"env": name, "currency": "USD", "monthly_total": round(report.monthly, 2), "pools": pools}


def _per_million(hourly: float, tps: float) -> float:
    return round(cost_per_million_tokens(hourly, tps), 4)


@click.command("cost")
@click.option("--env", "env", required=True, help=ENV_HELP)
@click.option(
    "--tokens-per-second",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Throughput of one instance; adds $ per 1M tokens per pool.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def cost_cmd(env: str, tokens_per_second: float | None, as_json: bool) -> None:
    """Monthly cost per pool and total: reserved billed 730 h, on-demand/spot by expected hours."""
    from pyctl.spec import load_env

    loaded = load_env(env)
    report = env_cost_report(loaded)
    if as_json:
        click.echo(json.dumps(_cost_json(loaded.name, report, tokens_per_second), indent=2))
        return
    _print_cost(loaded.name, report, tokens_per_second)


def _print_cost(name: str, report: EnvCost, tps: float | None) -> None:
    from rich.console import Console
    from rich.table import Table

    columns = ["pool", "kind", "type", "billed", "$/hour", "$/month"]
    table = Table(*columns, *(["$/1M tokens"] if tps else []), box=None, title=f"env {name}")
    for p in report.pools:
        if p.missing:
            table.add_row(
                p.pool.name, p.pool.capacity_kind, p.pool.instance_type, f"[red]{p.missing}[/]", "", "?"
            )
            continue
        if not p.lines:
            table.add_row(
                p.pool.name, p.pool.capacity_kind, p.pool.instance_type, "0 instances", "", money(0)
            )
        for line in p.lines:
            mark = "~" if line.price.estimate else ""
            row = [
                p.pool.name,
                line.kind,
                p.pool.instance_type,
                f"{line.instances} x {line.hours:g} h",
                mark + money(line.price.hourly),
                mark + money(line.monthly),
            ]
            if tps:
                row.append(money(cost_per_million_tokens(line.price.hourly, tps)))
            table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(f"total: {money(report.monthly)}/month")
    for p in report.missing:
        console.print(f"[yellow]{p.pool.name}: {p.missing}; add pricing.overrides.{p.pool.instance_type}[/]")
    if any(p.estimate for p in report.pools):
        console.print("~ estimated price (see docs/cost.md)")
