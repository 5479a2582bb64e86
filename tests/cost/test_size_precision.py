"""`pyctl size`: precision support per GPU architecture, shapes from a Hugging Face config.json, and one
line per type left out."""

from __future__ import annotations

import json
import struct
from math import prod
from pathlib import Path

import pytest

from pyctl.catalog import load_catalog
from pyctl.commands.cost import size_cmd
from pyctl.core.sizing import ARCH_PRECISIONS, KNOWN_MODELS, config_precision, estimate_params

from .test_cost_cli import invoke, size_json

HF = Path(__file__).parent / "fixtures" / "hf"


def all_types(cloud: str) -> set[str]:
    return set(load_catalog().instance_types[cloud])


def test_every_catalog_architecture_has_a_precision_row():
    assert {g.architecture for g in load_catalog().gpus.values()} <= set(ARCH_PRECISIONS)


@pytest.mark.parametrize(
    ("precision", "never"),
    [
        ("bf16", {"t4"}),
        ("fp8", {"t4", "a10g", "a100-40gb", "a100-80gb"}),
    ],
)
def test_size_never_recommends_a_gpu_without_the_precision(precision, never):
    out = size_json("--model", "llama-3-8b", "--precision", precision, "--top", 100)
    listed = {o["gpu"] for opts in out["options"].values() for o in opts}
    assert listed and not listed & never
    rejected = {r["instance_type"]: r["reason"] for r in out["rejected"]["aws"]}
    assert rejected["g4dn.metal"] == f"t4: no {precision} support on Turing (needs " + (
        "Ampere or newer)" if precision == "bf16" else "Ada or Hopper or newer)"
    )


def test_fp16_and_int4_still_run_on_t4():
    fp16 = size_json("--model", "llama-3-8b", "--precision", "fp16", "--top", 100)
    assert "g4dn.12xlarge" in {o["instance_type"] for o in fp16["options"]["aws"]}
    int4 = size_json("--model", "llama-3-8b", "--precision", "int4", "--top", 1)
    assert int4["options"]["aws"][0]["instance_type"] == "g4dn.xlarge"


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp8", "int4"])
def test_every_type_is_either_listed_or_left_out_with_a_reason(precision):
    out = size_json("--model", "llama-3-70b", "--precision", precision, "--top", 1000)
    for cloud in ("aws", "gcp"):
        listed = {o["instance_type"] for o in out["options"][cloud]}
        rejected = {r["instance_type"] for r in out["rejected"][cloud]}
        assert not listed & rejected
        assert listed | rejected == all_types(cloud)
        assert all(r["reason"] and "\n" not in r["reason"] for r in out["rejected"][cloud])


def test_memory_rejection_says_how_much_is_needed():
    out = size_json("--model", "llama-3-70b", "--precision", "bf16")
    reason = {r["instance_type"]: r["reason"] for r in out["rejected"]["aws"]}["g6.xlarge"]
    assert reason.startswith("l4: needs 157.9 GB per GPU even on 1 GPU;") and "25.8 GB (24 GiB)" in reason


def test_table_summarises_the_left_out_types_and_explain_lists_each():
    short = invoke(size_cmd, "--model", "llama-3-8b", "--precision", "fp8")
    assert short.exit_code == 0, short.output
    assert "no fp8 on a100-40gb, a100-80gb, a10g, t4 (--explain lists each" in short.output
    full = invoke(size_cmd, "--model", "llama-3-8b", "--precision", "fp8", "--explain")
    assert "  aws g5.xlarge: a10g: no fp8 support on Ampere (needs Ada or Hopper or newer)" in full.output


@pytest.mark.parametrize(
    ("config", "known"),
    [("llama-3-8b", "llama-3-8b"), ("mixtral-8x7b", "mixtral-8x7b"), ("llama-2-7b", "llama-2-7b")],
)
def test_parameter_estimate_from_config_matches_the_published_count(config, known):
    estimate = estimate_params(json.loads((HF / f"{config}.json").read_text()))
    assert estimate == pytest.approx(KNOWN_MODELS[known].params, rel=0.01)


def test_size_from_a_config_json_takes_shape_and_precision_from_it():
    out = size_json("--config", HF / "llama-3-8b.json")
    model = out["model"]
    assert (model["layers"], model["kv_heads"], model["head_dim"]) == (32, 8, 128)
    assert model["precision"] == "bf16" and "estimated from the config" in model["source"]
    assert model["params"] == pytest.approx(8.03e9, rel=0.01)


def test_precision_option_wins_over_the_config():
    out = size_json("--config", HF / "llama-2-7b.json", "--precision", "int4")
    assert out["model"]["precision"] == "int4"
    assert size_json("--config", HF / "llama-2-7b.json")["model"]["precision"] == "fp16"


def write_safetensors(path: Path, tensors: dict[str, list[int]]) -> None:
    """The safetensors layout: 8-byte little-endian header length, the JSON header, the raw data."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tensors.items():
        size = 2 * prod(shape)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


def test_a_model_directory_counts_parameters_from_the_safetensors_headers(tmp_path):
    (tmp_path / "config.json").write_text((HF / "llama-3-8b.json").read_text())
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": [1000, 3000], "b": [500]})
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {"c": [2000, 2000]})
    out = size_json("--config", tmp_path)
    assert out["model"]["params"] == 1000 * 3000 + 500 + 2000 * 2000
    assert "counted from safetensors" in out["model"]["source"]


@pytest.mark.parametrize(
    ("quant", "precision"),
    [
        ({"quant_method": "fp8", "activation_scheme": "dynamic"}, "fp8"),
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "int4"),
        ({"quant_method": "gptq", "bits": 8}, "int8"),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "int4"),
    ],
)
def test_quantization_config_sets_the_precision(quant, precision):
    assert config_precision({"torch_dtype": "bfloat16", "quantization_config": quant}) == precision


def test_a_quantized_model_directory_estimates_parameters_from_the_config(tmp_path):
    config = json.loads((HF / "llama-3-8b.json").read_text())
    config["quantization_config"] = {"quant_method": "awq", "bits": 4}
    (tmp_path / "config.json").write_text(json.dumps(config))
    write_safetensors(tmp_path / "model.safetensors", {"packed": [10, 10]})  # packed int32: not params
    out = size_json("--config", tmp_path)
    assert out["model"]["precision"] == "int4"
    assert out["model"]["params"] == pytest.approx(8.03e9, rel=0.01)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"hidden_size": 4096}, "num_hidden_layers is missing"),
        (
            {**json.loads((HF / "llama-3-8b.json").read_text()), "num_hidden_layers": "32"},
            "num_hidden_layers must be",
        ),
        (
            {
                **json.loads((HF / "llama-3-8b.json").read_text()),
                "quantization_config": {"quant_method": "hqq"},
            },
            "quant_method 'hqq' is not one pyctl sizes",
        ),
    ],
)
def test_a_bad_config_is_one_error_line_naming_the_field(tmp_path, config, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = invoke(size_cmd, "--config", path)
    assert result.exit_code == 2
    assert result.output.startswith(f"error: --config: {path}: ") and message in result.output
    assert result.output.count("\n") == 1


def test_config_and_model_together_are_refused():
    result = invoke(size_cmd, "--config", HF / "llama-3-8b.json", "--model", "llama-3-8b")
    assert result.exit_code == 2 and "--config and --model: give one of them" in result.output
