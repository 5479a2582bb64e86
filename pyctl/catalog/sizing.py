"""Which catalog types can serve a model, and at what price: `pyctl size`'s question, answered from the
pure arithmetic in `pyctl.core.sizing` and the catalog's types and prices."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyctl.catalog import Catalog, InstanceType, load_catalog
from pyctl.catalog.prices import PriceBook, load_prices, quote
from pyctl.core.sizing import (
    DEFAULT_PRECISION,
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


@dataclass(frozen=True)
class SizeQuery:
    """`pyctl size`'s question: a model (a config.json, a known name, or its shape options), how it is
    served (precision, context, batch, headroom) and where it is priced (the reference regions for None)."""

    config: Path | None = None
    model: str | None = None
    params: str | None = None
    layers: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    precision: str | None = None
    context: int = 4096
    batch: int = 1
    min_headroom_percent: float = 0.0
    aws_region: str | None = None
    gcp_region: str | None = None


def sized_model(q: SizeQuery) -> SizedModel:
    """The shape and precision from `--config` / `--model` / the shape options of `pyctl size`."""
    base, config_precision, source = None, None, "options"
    if q.config is not None:
        if q.model is not None:
            raise PyctlError("--config and --model: give one of them")
        from pyctl.hf_config import load_model

        loaded = load_model(q.config)
        base, config_precision = loaded.model.shape, loaded.model.precision
        counted = "counted from safetensors" if loaded.params_counted else "estimated from the config"
        source = f"{loaded.source}, parameters {counted}"
    elif q.model is not None:
        source = f"--model {q.model}"
    shape = model_shape(q.model, q.params, q.layers, q.kv_heads, q.head_dim, base=base)
    return SizedModel(shape, q.precision or config_precision or DEFAULT_PRECISION, source)


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


@dataclass(frozen=True)
class Sizing:
    model: SizedModel
    need: Requirement  # bytes of weights and KV cache for the context and batch
    report: SizeReport


def size_model(q: SizeQuery) -> Sizing:
    """`pyctl size`: the model's shape, its memory need, and per cloud the types that hold it, priced."""
    sized = sized_model(q)
    need = requirement(sized.shape, precision=sized.precision, context=q.context, batch=q.batch)
    book = load_prices()
    regions = {
        "aws": q.aws_region or book.reference_regions["aws"],
        "gcp": q.gcp_region or book.reference_regions["gcp"],
    }
    report = size_options(
        need,
        precision=sized.precision,
        regions=regions,
        min_headroom_percent=q.min_headroom_percent,
        book=book,
    )
    return Sizing(sized, need, report)
