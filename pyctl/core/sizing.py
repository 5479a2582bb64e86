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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Precision = Literal["fp16", "bf16", "fp8", "int8", "int4"]
BYTES_PER_PARAM: dict[str, float] = {"fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
GB = 10**9
GIB = 2**30
ACTIVATION_FRACTION = 0.10
RUNTIME_BYTES_PER_GPU = 1 * GIB


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


def parse_params(text: str) -> float:
    """`70B`, `8.03b`, `500M` or a plain number -> parameter count."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmbtKMBT]?)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not a parameter count (e.g. 70B, 8.03B, 500M)")
    value = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if value <= 0:
        raise ValueError(f"{text!r}: the parameter count must be positive")
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
