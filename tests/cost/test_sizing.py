"""Sizing worked by hand: weights, KV cache, overhead, tensor-parallel fit on one node."""

from __future__ import annotations

import pytest

from pyctl.core.sizing import (
    GB,
    GIB,
    KNOWN_MODELS,
    ModelShape,
    fit_on_node,
    kv_cache_bytes,
    parse_params,
    requirement,
    tp_degrees,
    weights_bytes,
)

LLAMA_2_7B = KNOWN_MODELS["llama-2-7b"]


def test_llama_2_7b_kv_cache_at_4096_context_is_2_1_gb_per_sequence_in_fp16():
    # 2 x 32 layers x 32 kv heads x 128 head dim x 4096 tokens x 2 bytes = 2,147,483,648 bytes
    kv = kv_cache_bytes(LLAMA_2_7B, context=4096, batch=1, precision="fp16")
    assert kv == 2 * 32 * 32 * 128 * 4096 * 2 == 2_147_483_648
    assert round(kv / GB, 3) == 2.147


def test_kv_cache_scales_with_batch_and_shrinks_with_grouped_query_attention():
    llama3_8b = KNOWN_MODELS["llama-3-8b"]  # 8 kv heads instead of 32: a quarter of the cache
    assert kv_cache_bytes(llama3_8b, context=4096, batch=1, precision="bf16") == 2_147_483_648 / 4
    assert kv_cache_bytes(LLAMA_2_7B, context=4096, batch=8, precision="fp16") == 8 * 2_147_483_648


@pytest.mark.parametrize(
    ("precision", "gigabytes"), [("fp16", 140), ("bf16", 140), ("fp8", 70), ("int8", 70), ("int4", 35)]
)
def test_70b_weights_per_precision(precision, gigabytes):
    assert weights_bytes(parse_params("70B"), precision) == gigabytes * GB


@pytest.mark.parametrize(
    ("text", "count"), [("70B", 70e9), ("8.03b", 8.03e9), ("500M", 500e6), ("1.5T", 1.5e12), ("7000000", 7e6)]
)
def test_parse_params(text, count):
    assert parse_params(text) == pytest.approx(count)


@pytest.mark.parametrize("text", ["", "70 GB", "-7B", "seven", "0"])
def test_parse_params_rejects_nonsense(text):
    with pytest.raises(ValueError, match="parameter count"):
        parse_params(text)


@pytest.mark.parametrize(
    ("gpus", "degrees"), [(1, [1]), (2, [1, 2]), (4, [1, 2, 4]), (8, [1, 2, 4, 8]), (3, [1]), (6, [1, 2])]
)
def test_tensor_parallel_degrees_are_powers_of_two_dividing_the_node(gpus, degrees):
    assert tp_degrees(gpus) == degrees


def _70b_fp16_short_context():
    shape = ModelShape(params=70e9, layers=80, kv_heads=8, head_dim=128)
    return requirement(shape, precision="fp16", context=4096, batch=1)


def test_70b_fp16_does_not_fit_one_80gb_gpu_and_needs_two():
    need = _70b_fp16_short_context()
    assert need.weights == 140 * GB
    assert fit_on_node(need, vram_gib=80, gpu_counts=[1]) is None
    fit = fit_on_node(need, vram_gib=80, gpu_counts=[8])
    assert fit is not None
    assert (fit.gpus, fit.gpus_in_node) == (2, 8)
    # (140 GB + 1.34 GB KV) x 1.10 / 2 + 1 GiB runtime per GPU
    assert fit.per_gpu_bytes == pytest.approx((140e9 + 2 * 80 * 8 * 128 * 4096 * 2) * 1.1 / 2 + GIB)
    assert 0 < fit.headroom_bytes < 10 * GB


def test_headroom_requirement_pushes_to_the_next_tensor_parallel_degree():
    need = _70b_fp16_short_context()
    fit = fit_on_node(need, vram_gib=80, gpu_counts=[8], min_headroom_percent=20)
    assert fit is not None and fit.gpus == 4
    assert fit.headroom_percent >= 20


def test_attachable_gpus_choose_the_smallest_node_that_holds_the_model():
    # Llama 2 7B fp16 (13.5 GB weights) on 16 GiB T4s: one does not hold it, two do.
    need = requirement(LLAMA_2_7B, precision="fp16", context=4096, batch=1)
    fit = fit_on_node(need, vram_gib=16, gpu_counts=[1, 2, 4])
    assert fit is not None and (fit.gpus, fit.gpus_in_node) == (2, 2)


def test_a_model_too_big_for_any_node_does_not_fit():
    need = requirement(
        KNOWN_MODELS["llama-3-70b"], precision="fp16", context=32768, batch=64
    )  # 687 GB of KV cache
    assert fit_on_node(need, vram_gib=80, gpu_counts=[8]) is None


def test_unknown_precision_and_empty_context_are_refused():
    with pytest.raises(ValueError, match="unknown precision"):
        requirement(LLAMA_2_7B, precision="fp4", context=4096, batch=1)
    with pytest.raises(ValueError, match="at least 1"):
        requirement(LLAMA_2_7B, precision="fp16", context=0, batch=1)
