"""`pyctl size` (which GPU types fit a model, cheapest first) and `pyctl cost` (an env's monthly cost).

The click commands parse options, call one function each (`pyctl.catalog.sizing.size_model`,
`pyctl.catalog.prices.env_outlook`) and print; the arithmetic lives in pyctl/core/sizing.py and
pyctl/core/cost.py, the catalog's types and prices in pyctl/catalog/.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pyctl.commands import ENV_HELP
from pyctl.completion import complete_env
from pyctl.core.cost import EnvOutlook, PoolCost, cost_per_million_tokens, money
from pyctl.core.sizing import BYTES_PER_PARAM, DEFAULT_PRECISION, GB, KNOWN_MODELS, Requirement

if TYPE_CHECKING:  # pydantic models load lazily: the catalog is imported by the commands that use it
    from pyctl.catalog.sizing import SizedModel, SizeReport


class FiniteFloat(click.FloatRange):
    """click's FloatRange without NaN and infinity: `float("nan")` passes every range check (all comparisons
    with NaN are false), and NaN/Infinity are not JSON (`json.dumps` would print them anyway)."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


# --- size --------------------------------------------------------------------------------------------


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
    "--context",
    type=click.IntRange(min=1, max=100_000_000),
    default=4096,
    show_default=True,
    help="Tokens per sequence.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1, max=1_000_000),
    default=1,
    show_default=True,
    help="Concurrent sequences.",
)
@click.option("--layers", type=click.IntRange(min=1, max=100_000), default=None, help="Transformer layers.")
@click.option(
    "--kv-heads", type=click.IntRange(min=1, max=100_000), default=None, help="Key/value heads (GQA groups)."
)
@click.option(
    "--head-dim",
    type=click.IntRange(min=1, max=1_000_000),
    default=None,
    help="Dimension of one attention head.",
)
@click.option(
    "--min-headroom",
    "min_headroom_percent",
    type=FiniteFloat(0, 99),
    default=0.0,
    show_default=True,
    help="Free GPU memory to keep, %.",
)
@click.option(
    "--top",
    type=click.IntRange(min=1, max=1000),
    default=5,
    show_default=True,
    help="Types to list per cloud.",
)
@click.option(
    "--explain", is_flag=True, help="Also list every type left out, with the reason (one line each)."
)
@click.option("--aws-region", default=None, help="Price AWS types in this region (default: us-east-1).")
@click.option("--gcp-region", default=None, help="Price GCP types in this region (default: us-central1).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of a table (always with `rejected`)."
)
def size_cmd(top: int, explain: bool, as_json: bool, **query: Any) -> None:
    """Which GPU types fit a model (weights + KV cache + overhead), cheapest on-demand $/hour first.

    Types whose GPU cannot run the precision (bf16 needs Ampere or newer, fp8 Ada/Hopper or newer) are
    left out. GPUs needed is the tensor-parallel degree across the GPUs of one node. Formulas: docs/cost.md.
    """
    from pyctl.catalog.sizing import SizeQuery, size_model

    sizing = size_model(SizeQuery(**query))
    model, need, report = sizing.model, sizing.need, sizing.report
    if as_json:
        click.echo(json.dumps(_size_json(model, need, report, top), indent=2, allow_nan=False))
        return
    _print_size(model, need, report, top, explain)


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


def _lines_json(cost: PoolCost, tps: float | None) -> list[dict[str, Any]]:
    return [
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
        for line in cost.lines
    ]


def _cost_json(name: str, report: EnvOutlook, tps: float | None) -> Any:
    pools = []
    for p in report.pools:
        exp, worst = p.expected, p.worst
        pools.append(
            {
                "pool": p.name,
                "cloud": exp.pool.cloud,
                "capacity": exp.pool.capacity_kind,
                "instance_type": exp.pool.instance_type,
                "instances": exp.pool.instances,
                "max_instances": p.max_instances,
                "scaled_from_zero": p.scaled_from_zero,
                "monthly": None if exp.missing else round(exp.monthly, 2),
                "worst_case_monthly": None if worst.missing else round(worst.monthly, 2),
                "estimate": exp.estimate or worst.estimate,
                "missing_price": exp.missing or worst.missing or None,
                "lines": _lines_json(exp, tps),
                "worst_case_lines": _lines_json(worst, None),
            }
        )
    return {
        "env": name,
        "currency": "USD",
        "monthly_total": round(report.expected_monthly, 2),
        "worst_case_monthly_total": round(report.worst_monthly, 2),
        "pools": pools,
    }


def _per_million(hourly: float, tps: float) -> float:
    return round(cost_per_million_tokens(hourly, tps), 4)


@click.command("cost")
@click.option("--env", "env", required=True, help=ENV_HELP, shell_complete=complete_env)
@click.option(
    "--tokens-per-second",
    type=FiniteFloat(min=0, min_open=True, max=1e9),
    default=None,
    help="Throughput of one instance; adds $ per 1M tokens per pool.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def cost_cmd(env: str, tokens_per_second: float | None, as_json: bool) -> None:
    """Monthly cost per pool and total, expected and worst case.

    Expected: reserved billed 730 h; on-demand/spot at the desired count for expected_hours_per_month (a
    pool at desired 0 that expects hours counts as one instance). Worst case: every pool at its max, all
    month, spot at the on-demand price.
    """
    from pyctl.catalog.prices import env_outlook
    from pyctl.spec import load_env

    loaded = load_env(env)
    report = env_outlook(loaded.spec)
    if as_json:
        click.echo(json.dumps(_cost_json(loaded.name, report, tokens_per_second), indent=2, allow_nan=False))
        return
    _print_cost(loaded.name, report, tokens_per_second)


def _print_cost(name: str, report: EnvOutlook, tps: float | None) -> None:
    from pyctl.output import console, table

    columns = ["pool", "kind", "type", "billed", "$/hour", "$/month", "worst case $/month"]
    tbl = table(*columns, *(["$/1M tokens"] if tps else []), copy="type", title=f"env {name}")
    for p in report.pools:
        exp = p.expected
        mark = "~" if p.worst.estimate else ""
        worst = "?" if p.worst.missing else f"{mark}{money(p.worst.monthly)} ({p.max_instances} x 730 h)"
        if exp.missing:
            tbl.add_row(
                p.name,
                exp.pool.capacity_kind,
                exp.pool.instance_type,
                f"[red]{exp.missing}[/]",
                "",
                "?",
                worst,
            )
            continue
        if not exp.lines:
            tbl.add_row(
                p.name, exp.pool.capacity_kind, exp.pool.instance_type, "0 instances", "", money(0), worst
            )
        for i, line in enumerate(exp.lines):
            mark = "~" if line.price.estimate else ""
            billed = f"{line.instances} x {line.hours:g} h" + (" *" if p.scaled_from_zero else "")
            row = [
                p.name,
                line.kind,
                exp.pool.instance_type,
                billed,
                mark + money(line.price.hourly),
                mark + money(line.monthly),
                worst if i == 0 else "",
            ]
            if tps:
                row.append(money(cost_per_million_tokens(line.price.hourly, tps)))
            tbl.add_row(*row)
    out = console()
    out.print(tbl)
    out.print(
        f"total: {money(report.expected_monthly)}/month expected, {money(report.worst_monthly)}/month worst case"
    )
    out.print(
        "worst case: every pool at its max, all month (730 h), spot at the on-demand price (its ceiling)"
    )
    if any(p.scaled_from_zero for p in report.pools):
        out.print("* desired is 0: costed as 1 instance for its expected_hours_per_month")
    for c in report.missing:
        out.print(f"[yellow]{c.pool.name}: {c.missing}; add pricing.overrides.{c.pool.instance_type}[/]")
    if report.estimate:
        out.print("~ estimated price (see docs/cost.md)")
