"""Does a model fit on a node, and on how many of its GPUs?

Memory needed to serve a transformer (docs/cost.md has the same formulas):
- weights  = parameters x bytes per parameter (fp16/bf16 2, fp8/int8 1, int4 0.5);
- KV cache = 2 (K and V) x layers x kv_heads x head_dim x context x batch x bytes, in the same precision;
- activations: ACTIVATION_FRACTION of (weights + KV cache), shared across the GPUs like the weights;
- runtime: RUNTIME_BYTES_PER_GPU on every GPU (CUDA context, cuBLAS/NCCL workspaces).
With tensor parallelism over `tp` GPUs of one node, each GPU holds (weights + KV) x (1 + fraction) / tp
plus the runtime. `tp` is a power of two that divides the node's GPU count; the smallest that fits wins.
GB here are 10^9 bytes; GPU memory is in GiB (2^30 bytes) as the vendors state it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Precision = Literal["fp16", "bf16", "fp8", "int8", "int4"]
BYTES_PER_PARAM: dict[str, float] = {"fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
DEFAULT_PRECISION = "bf16"
GB = 10**9
GIB = 2**30
ACTIVATION_FRACTION = 0.10
RUNTIME_BYTES_PER_GPU = 1 * GIB

# The weight formats each GPU architecture runs natively (NVIDIA: bf16 needs compute capability 8.0,
# Ampere; fp8 needs 8.9, Ada, or newer). fp16, int8 and weight-only int4 run on every catalog GPU
# (Turing and newer). Keyed by the catalog's `architecture`; docs/cost.md has the table.
_TURING = frozenset({"fp16", "int8", "int4"})
_AMPERE = _TURING | {"bf16"}
_ADA = _AMPERE | {"fp8"}
ARCH_PRECISIONS: dict[str, frozenset[str]] = {
    "turing": _TURING,
    "ampere": _AMPERE,
    "ada": _ADA,
    "hopper": _ADA,
    "blackwell": _ADA,
}
_FIRST_ARCH = {"bf16": "Ampere", "fp8": "Ada or Hopper"}


def precision_unsupported(architecture: str, precision: str) -> str | None:
    """Why `architecture` cannot run `precision` weights natively; None when it can."""
    supported = ARCH_PRECISIONS.get(architecture)
    if supported is None:
        return f"unknown architecture {architecture!r}"
    if precision in supported:
        return None
    return f"no {precision} support on {architecture.capitalize()} (needs {_FIRST_ARCH[precision]} or newer)"


@dataclass(frozen=True)
class ModelShape:
    """What memory sizing needs to know about a decoder-only transformer."""

    params: float
    layers: int
    kv_heads: int
    head_dim: int


# Published configurations (config.json of each model); params are total parameters.
KNOWN_MODELS: dict[str, ModelShape] = {
    "llama-2-7b": ModelShape(params=6.74e9, layers=32, kv_heads=32, head_dim=128),
    "llama-3-8b": ModelShape(params=8.03e9, layers=32, kv_heads=8, head_dim=128),
    "llama-3-70b": ModelShape(params=70.6e9, layers=80, kv_heads=8, head_dim=128),
    "mistral-7b": ModelShape(params=7.24e9, layers=32, kv_heads=8, head_dim=128),
    # Mixture of experts: every expert's weights are resident even though two run per token.
    "mixtral-8x7b": ModelShape(params=46.7e9, layers=32, kv_heads=8, head_dim=128),
}

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


MAX_PARAMS = 1e15  # 1000T: far above any model, far below float overflow


def parse_params(text: str) -> float:
    """`70B`, `8.03b`, `500M` or a plain number -> parameter count."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmbtKMBT]?)\s*", text)
    if match is None:
        raise ValueError(f"{text[:40]!r} is not a parameter count (e.g. 70B, 8.03B, 500M)")
    value = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if value <= 0:
        raise ValueError(f"{text[:40]!r}: the parameter count must be positive")
    if not value <= MAX_PARAMS:  # also catches inf: 400 digits overflow float
        raise ValueError(f"{text[:40]!r}: more than {MAX_PARAMS:.0e} parameters")
    return value


def weights_bytes(params: float, precision: str) -> float:
    return params * BYTES_PER_PARAM[precision]


def kv_cache_bytes(shape: ModelShape, *, context: int, batch: int, precision: str) -> float:
    """2 x layers x kv_heads x head_dim x context x batch x bytes."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * context * batch * BYTES_PER_PARAM[precision]


@dataclass(frozen=True)
class Requirement:
    """Memory a model needs, independent of where it runs."""

    weights: float
    kv_cache: float

    @property
    def shared(self) -> float:
        """Bytes split across the tensor-parallel GPUs: weights, KV cache and activations."""
        return (self.weights + self.kv_cache) * (1 + ACTIVATION_FRACTION)

    def per_gpu(self, tp: int) -> float:
        return self.shared / tp + RUNTIME_BYTES_PER_GPU

    def total(self, tp: int) -> float:
        return self.shared + tp * RUNTIME_BYTES_PER_GPU


def requirement(shape: ModelShape, *, precision: str, context: int, batch: int) -> Requirement:
    if precision not in BYTES_PER_PARAM:
        raise ValueError(f"unknown precision {precision!r} (known: {', '.join(BYTES_PER_PARAM)})")
    if context < 1 or batch < 1:
        raise ValueError("context and batch must be at least 1")
    return Requirement(
        weights=weights_bytes(shape.params, precision),
        kv_cache=kv_cache_bytes(shape, context=context, batch=batch, precision=precision),
    )


def tp_degrees(gpus_in_node: int) -> list[int]:
    """Tensor-parallel degrees a node allows: powers of two dividing its GPU count, smallest first."""
    degrees, tp = [], 1
    while tp <= gpus_in_node:
        if gpus_in_node % tp == 0:
            degrees.append(tp)
        tp *= 2
    return degrees


@dataclass(frozen=True)
class Fit:
    """The model on `gpus` GPUs (tensor parallel) of a node with `gpus_in_node` GPUs of `vram_gib` each."""

    gpus: int
    gpus_in_node: int
    vram_gib: float
    per_gpu_bytes: float

    @property
    def headroom_bytes(self) -> float:
        """Free memory per GPU once the model is loaded."""
        return self.vram_gib * GIB - self.per_gpu_bytes

    @property
    def headroom_percent(self) -> float:
        return 100 * self.headroom_bytes / (self.vram_gib * GIB)


def fit_on_node(
    need: Requirement, *, vram_gib: float, gpu_counts: Iterable[int], min_headroom_percent: float = 0.0
) -> Fit | None:
    """The fewest GPUs of one node that hold the model; `gpu_counts` lists the node shapes on offer
    (one count for a fixed type, several for GCP N1 where GPUs are attached). None if nothing fits."""
    best: Fit | None = None
    for count in sorted(set(gpu_counts)):
        for tp in tp_degrees(count):
            fit = Fit(gpus=tp, gpus_in_node=count, vram_gib=vram_gib, per_gpu_bytes=need.per_gpu(tp))
            if fit.headroom_percent >= min_headroom_percent:
                if best is None or fit.gpus < best.gpus:
                    best = fit
                break
    return best


def explain_no_fit(need: Requirement, *, vram_gib: float, gpu_counts: Iterable[int]) -> str:
    """One line on why the model fits on no GPU count of a node (for `fit_on_node` returning None)."""
    largest = max(gpu_counts)
    tp = tp_degrees(largest)[-1]
    return (
        f"needs {need.per_gpu(tp) / GB:.1f} GB per GPU even on {tp} GPU{'s' if tp > 1 else ''}; "
        f"the GPU has {vram_gib * GIB / GB:.1f} GB ({vram_gib:g} GiB)"
    )


# --- a Hugging Face config.json ---------------------------------------------------------------------

_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16"}


@dataclass(frozen=True)
class HfModel:
    """What a Hugging Face config.json says about sizing; `params` is estimated from the layer shapes."""

    shape: ModelShape
    precision: str | None  # the checkpoint's weight format, None when serving would pick (e.g. float32)


def _text_config(config: Mapping[str, object]) -> Mapping[str, object]:
    """Multimodal configs keep the language model's fields under `text_config`."""
    inner = config.get("text_config")
    if "num_hidden_layers" not in config and isinstance(inner, Mapping):
        return inner
    return config


def _int(config: Mapping[str, object], key: str, default: int | None = None) -> int:
    value = config.get(key)
    value = default if value is None else value
    if value is None:
        raise ValueError(f"config.json: {key} is missing")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"config.json: {key} must be a positive integer, got {value!r}")
    return value


def config_precision(config: Mapping[str, object]) -> str | None:
    """The weight format of a checkpoint: `quantization_config` first, then `torch_dtype` (or `dtype`)."""
    quant = config.get("quantization_config")
    if isinstance(quant, Mapping):
        method = str(quant.get("quant_method", "")).lower()
        if method == "fp8":
            return "fp8"
        if method in ("awq", "gptq"):
            bits = quant.get("bits")
            if bits in (4, 8):
                return "int4" if bits == 4 else "int8"
            raise ValueError(f"config.json: quantization_config.bits {bits!r} is not 4 or 8")
        if method == "bitsandbytes":
            if quant.get("load_in_4bit"):
                return "int4"
            if quant.get("load_in_8bit"):
                return "int8"
        raise ValueError(
            f"config.json: quantization_config.quant_method {method or None!r} is not one pyctl sizes "
            "(fp8, awq, gptq, bitsandbytes); pass --precision"
        )
    dtype = config.get("torch_dtype", config.get("dtype"))
    return _DTYPES.get(str(dtype)) if dtype is not None else None


def estimate_params(config: Mapping[str, object]) -> float:
    """Parameters of a decoder-only transformer from its config: embeddings, attention, gated MLP
    (x experts for Mixtral-style MoE), norms. Within about 1% for Llama, Mistral, Qwen and Mixtral."""
    cfg = _text_config(config)
    hidden = _int(cfg, "hidden_size")
    layers = _int(cfg, "num_hidden_layers")
    heads = _int(cfg, "num_attention_heads")
    kv_heads = _int(cfg, "num_key_value_heads", heads)
    head_dim = _int(cfg, "head_dim", hidden // heads)
    vocab = _int(cfg, "vocab_size")
    intermediate = _int(cfg, "intermediate_size")
    experts = _int(cfg, "num_local_experts", 1)
    if experts == 1 and any(k in cfg for k in ("num_experts", "n_routed_experts", "moe_intermediate_size")):
        raise ValueError(
            "config.json: this mixture-of-experts layout is not one pyctl estimates; pass --params"
        )
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)  # q, o and k, v projections
    mlp = experts * 3 * hidden * intermediate + (hidden * experts if experts > 1 else 0)  # + router
    per_layer = attention + mlp + 2 * hidden
    embeddings = vocab * hidden * (1 if cfg.get("tie_word_embeddings") else 2)
    return float(layers * per_layer + embeddings + hidden)


def shape_from_config(config: Mapping[str, object], params: float | None = None) -> HfModel:
    """The sizing shape of a Hugging Face config.json; `params` (counted from the weights) wins over
    the estimate from the layer shapes."""
    cfg = _text_config(config)
    layers = _int(cfg, "num_hidden_layers")
    heads = _int(cfg, "num_attention_heads")
    hidden = _int(cfg, "hidden_size")
    shape = ModelShape(
        params=params if params is not None else estimate_params(config),
        layers=layers,
        kv_heads=_int(cfg, "num_key_value_heads", heads),
        head_dim=_int(cfg, "head_dim", hidden // heads),
    )
    return HfModel(shape=shape, precision=config_precision(cfg) or config_precision(config))
