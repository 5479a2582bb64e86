"""`pyctl size` and `pyctl cost` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyctl.cli import PyctlGroup
from pyctl.commands.cost import cost_cmd, size_cmd

ENV_DIR = Path(__file__).parent / "fixtures" / "env"


def invoke(command, *args):
    # Wrapped in pyctl's group so PyctlError becomes an error line and an exit code, as in `pyctl`.
    group = PyctlGroup(commands={command.name: command})
    return CliRunner().invoke(group, [command.name, *map(str, args)])


def size_json(*args):
    result = invoke(size_cmd, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_size_70b_fp16_lists_multi_gpu_nodes_cheapest_first():
    out = size_json("--params", "70B", "--precision", "fp16", "--context", 4096, "--batch", 1,
                    "--layers", 80, "--kv-heads", 8, "--head-dim", 128, "--top", 50)  # fmt: skip
    assert out["weights_gb"] == 140.0
    aws = {o["instance_type"]: o for o in out["options"]["aws"]}
    assert aws["p5.48xlarge"]["gpus_needed"] == 2 and aws["p5.48xlarge"]["gpus_in_node"] == 8
    assert "p5.4xlarge" not in aws  # one H100 cannot hold 140 GB of weights
    assert "g5.xlarge" not in aws
    for cloud_options in out["options"].values():
        hourly = [o["on_demand_hourly"] for o in cloud_options]
        assert hourly == sorted(hourly)
    assert all(o["headroom_gb_per_gpu"] >= 0 for opts in out["options"].values() for o in opts)


def test_size_known_model_fits_one_small_gpu_in_int4_and_prices_it():
    out = size_json("--model", "llama-3-8b", "--precision", "int4", "--top", 1)
    assert out["model"]["layers"] == 32 and out["model"]["kv_heads"] == 8
    (aws,) = out["options"]["aws"]
    assert (aws["instance_type"], aws["gpus_needed"], aws["on_demand_hourly"]) == ("g4dn.xlarge", 1, 0.526)
    (gcp,) = out["options"]["gcp"]
    # n1-standard-4 with one T4: $0.189999 + $0.35
    assert (gcp["instance_type"], gcp["gpus_in_node"]) == ("n1-standard-4", 1)
    assert gcp["on_demand_hourly"] == pytest.approx(0.54, abs=1e-4)


def test_size_llama_2_7b_reports_the_hand_worked_kv_cache():
    out = size_json("--model", "llama-2-7b", "--precision", "fp16", "--context", 4096, "--batch", 1)
    assert out["kv_cache_gb"] == 2.147


def test_size_explicit_options_override_the_model_shape():
    out = size_json("--model", "llama-2-7b", "--params", "13B", "--layers", 40, "--kv-heads", 40)
    assert out["model"]["params"] == 13e9 and out["model"]["layers"] == 40 and out["model"]["head_dim"] == 128


def test_size_table_output():
    result = invoke(size_cmd, "--model", "mixtral-8x7b", "--precision", "fp8", "--top", 2)
    assert result.exit_code == 0, result.output
    assert "weights 46.7 GB" in result.output
    assert "aws" in result.output and "gcp" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--params", "70B"], "--layers, --kv-heads, --head-dim: needed for the KV cache; pass --config"),
        (["--model", "gpt-5"], "--model: unknown model 'gpt-5'"),
        (
            ["--params", "lots", "--layers", "1", "--kv-heads", "1", "--head-dim", "1"],
            "--params: 'lots' is not",
        ),
    ],
)
def test_size_refuses_incomplete_shapes_with_one_clear_line(args, message):
    result = invoke(size_cmd, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_cost_of_an_env_worked_by_hand():
    result = invoke(cost_cmd, "--env", ENV_DIR, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    pools = {p["pool"]: p for p in out["pools"]}
    # reserved: 2 x 730 h x $55.04 less the env's 10% discount
    assert pools["h100-reserved"]["monthly"] == pytest.approx(2 * 730 * 55.04 * 0.9, abs=0.01)
    # on demand: 3 instances x 200 expected hours x $0.8048 less 10%
    assert pools["l4-serving"]["monthly"] == pytest.approx(3 * 200 * 0.8048 * 0.9, abs=0.01)
    # spot: 1 on-demand base at $1.006 less 10%, 3 at the overridden spot price $0.30, 100 h each
    lines = {line["kind"]: line for line in pools["a10g-spot"]["lines"]}
    assert lines["on_demand"]["monthly"] == pytest.approx(1 * 100 * 1.006 * 0.9, abs=0.01)
    assert (
        lines["spot"]["hourly"] == 0.30 and lines["spot"]["basis"] == "override pricing.overrides.g5.xlarge"
    )
    assert lines["spot"]["monthly"] == pytest.approx(3 * 100 * 0.30)
    # GCP N1 with 2 T4s all month: ($0.379998 + 2 x $0.35) less 10%
    assert pools["t4-batch"]["monthly"] == pytest.approx(730 * 1.079998 * 0.9, abs=0.01)
    assert out["monthly_total"] == pytest.approx(73647.25, abs=0.01)


def test_cost_per_million_tokens_per_pool():
    result = invoke(cost_cmd, "--env", ENV_DIR, "--tokens-per-second", 2000, "--json")
    out = json.loads(result.output)
    line = out["pools"][0]["lines"][0]
    assert line["cost_per_million_tokens"] == pytest.approx(55.04 * 0.9 / (2000 * 3600) * 1e6, abs=1e-4)


def test_cost_table_shows_total_and_token_column():
    result = invoke(cost_cmd, "--env", ENV_DIR, "--tokens-per-second", 2000)
    assert result.exit_code == 0, result.output
    assert "total: $73,647/month" in result.output
    assert "$/1M" in result.output


def test_cost_of_an_unknown_env_is_one_error_line(tmp_path):
    result = invoke(cost_cmd, "--env", tmp_path / "nope")
    assert result.exit_code == 2
    assert "no such env directory" in result.output


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_every_shipped_env_prices_all_its_pools(env):
    env_dir = Path(__file__).resolve().parents[2] / "infra" / "envs" / env
    out = json.loads(invoke(cost_cmd, "--env", env_dir, "--json").output)
    assert out["pools"], env
    assert [p["pool"] for p in out["pools"] if p["missing_price"]] == []
    assert out["monthly_total"] >= 0
