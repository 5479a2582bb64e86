"""env.yaml validation: the shipped envs load; every bad spec names file and field, exits 2, writes nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pyctl.cli import cli
from pyctl.spec import load_env

REPO = Path(__file__).resolve().parents[2]

BASE: dict[str, Any] = {
    "env": {"name": "team-a", "protected": False, "cost_center": "ml"},
    "clouds": {
        "aws": {
            "account_id": "123456789012",
            "region": "us-east-1",
            "vpc_id": "vpc-0123456789abcdef0",
            "subnet_ids": ["subnet-0123456789abcdef0"],
        },
        "gcp": {
            "project": "acme-ml-test",
            "region": "us-central1",
            "network": "projects/acme-ml-test/global/networks/gpu",
            "subnetwork": "projects/acme-ml-test/regions/us-central1/subnetworks/gpu",
        },
    },
    "backend": {"s3": {"bucket": "acme-tfstate", "key": "team-a.tfstate", "region": "us-east-1"}},
    "pools": [
        {
            "name": "h100-reserved",
            "cloud": "aws",
            "zones": ["us-east-1a"],
            "instance_type": "p5.48xlarge",
            "capacity": "reserved",
            "min": 1,
            "max": 2,
            "model": "llama-3-70b",
        },
        {
            "name": "l4-spot",
            "cloud": "aws",
            "gpu": "l4",
            "capacity": "spot",
            "max": 4,
            "spot": {"instance_types": ["g6.2xlarge"]},
        },
        {
            "name": "t4-gcp",
            "cloud": "gcp",
            "instance_type": "n1-standard-8",
            "gpus_per_instance": 2,
            "zones": ["us-central1-a"],
            "capacity": "spot",
            "max": 2,
            "spot": {"termination_action": "STOP"},
        },
    ],
    "model_cache": {
        "aws": {"bucket": "acme-models"},
        "gcp": {"bucket": "acme-models-gcs"},
        "models": [{"name": "llama-3-70b", "version": "v1"}],
    },
}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        node: Any = doc
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        node: Any = doc
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return mutate


def _append_pool(**pool: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["pools"].append(pool)


# (case id, mutation, expected field path, expected message fragment)
BAD_SPECS: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("unknown top-level key", _set("pool", []), "pool", "unknown key"),
    (
        "unknown nested key",
        _set("pools.0.instnace_type", "p5.48xlarge"),
        "pools[0].instnace_type",
        "unknown key",
    ),
    ("wrong type", _set("pools.1.max", "four"), "pools[1].max", "valid integer"),
    ("negative count", _set("pools.1.min", -1), "pools[1].min", "greater than or equal to 0"),
    (
        "unknown gpu",
        _set("pools.1.gpu", "h100x"),
        "pools[1].gpu",
        "unknown GPU 'h100x' (known: a100-40gb, a100-80gb",
    ),
    (
        "unknown instance type",
        _set("pools.0.instance_type", "p5.96xlarge"),
        "pools[0].instance_type",
        "known p5: p5.48xlarge",
    ),
    ("gpu does not match type", _set("pools.0.gpu", "a100-80gb"), "pools[0].gpu", "carries h100"),
    ("min greater than max", _set("pools.1.min", 5), "pools[1].min", "min (5) is greater than max (4)"),
    ("desired outside range", _set("pools.1.desired", 9), "pools[1].desired", "outside min..max (0..4)"),
    (
        "reserved pool with a spot price",
        _set("pools.0.spot", {"max_price": 30.0}),
        "pools[0].spot",
        "only spot pools",
    ),
    (
        "spot pool with a reservation",
        _set("pools.1.reservation", {"instance_count": 2}),
        "pools[1].reservation",
        "only reserved pools",
    ),
    (
        "zone outside region",
        _set("pools.0.zones", ["us-west-2a"]),
        "pools[0].zones[0]",
        "not in region 'us-east-1'",
    ),
    (
        "gcp zone outside region",
        _set("pools.2.zones", ["europe-west4-a"]),
        "pools[2].zones[0]",
        "not in region 'us-central1'",
    ),
    (
        "pool region differs",
        _set("pools.1.region", "us-west-2"),
        "pools[1].region",
        "not the env's AWS region",
    ),
    (
        "duplicate pool names",
        _set("pools.1.name", "h100-reserved"),
        "pools[1].name",
        "duplicate pool name 'h100-reserved'",
    ),
    ("missing backend", _delete("backend"), "backend", "required"),
    (
        "two backends",
        _set("backend.gcs", {"bucket": "acme-state", "prefix": "x"}),
        "backend",
        "exactly one of s3, gcs",
    ),
    ("bad account id", _set("clouds.aws.account_id", "12345"), "clouds.aws.account_id", "not valid here"),
    ("pool on unconfigured cloud", _delete("clouds.gcp"), "pools[2].cloud", "clouds.gcp is not configured"),
    (
        "mixed spot types of other capability",
        _set("pools.1.spot.instance_types", ["g6.12xlarge"]),
        "pools[1].spot.instance_types[0]",
        "carries 4 x l4, not 1 x l4",
    ),
    (
        "model not in cache",
        _set("pools.0.model", "mixtral"),
        "pools[0].model",
        "'mixtral' is not in model_cache.models",
    ),
    (
        "reservation too small for max",
        _set("pools.0.reservation", {"instance_count": 1, "match": "capacity-reservations-only"}),
        "pools[0].max",
        "max (2) exceeds the reservation's instance_count (1)",
    ),
    (
        "gcp attachable count",
        _set("pools.2.gpus_per_instance", 3),
        "pools[2].gpus_per_instance",
        "takes 1, 2, 4 x t4",
    ),
    (
        "termination action on aws",
        _set("pools.1.spot.termination_action", "STOP"),
        "pools[1].spot.termination_action",
        "GCP Spot VMs only",
    ),
    (
        "bad termination action",
        _set("pools.2.spot.termination_action", "HIBERNATE"),
        "pools[2].spot.termination_action",
        "'STOP' or 'DELETE'",
    ),
    ("reserved tag key", _set("tags", {"Env": "x"}), "tags.Env", "set by pyctl itself"),
    (
        "open ingress",
        _set("pools.1.ingress", {"cidrs": ["0.0.0.0/0"]}),
        "pools[1].ingress.cidrs",
        "whole internet",
    ),
    (
        "bad watchdog threshold",
        _set("watchdog", {"threshold_percent": 150}),
        "watchdog.threshold_percent",
        "less than or equal to 100",
    ),
    (
        "bad schedule",
        _set("watchdog", {"schedule": "every 5 minutes"}),
        "watchdog.schedule",
        "not valid here",
    ),
    ("missing cache bucket", _delete("model_cache.aws"), "model_cache.aws", "required: AWS pools"),
    (
        "no instance type or gpu",
        _delete("pools.0.instance_type"),
        "pools[0].instance_type",
        "set instance_type, or gpu",
    ),
    (
        "unknown price override",
        _set("pricing", {"overrides": {"p9.huge": {"on_demand_hourly": 1}}}),
        "pricing.overrides.p9.huge",
        "unknown instance or machine type",
    ),
    (
        "spot job on an unknown pool",
        _set("spot_recovery", {"jobs": [{"name": "finetune", "pool": "a100-spot"}]}),
        "spot_recovery.jobs[0].pool",
        "no pool 'a100-spot' (AWS pools: h100-reserved, l4-spot)",
    ),
    (
        "boot secret with two sources",
        _set(
            "pools.1.boot_secrets",
            [{"env_var": "HF_TOKEN", "ssm_parameter": "/hf", "secrets_manager_secret": "hf"}],
        ),
        "pools[1].boot_secrets[0]",
        "exactly one of ssm_parameter, secrets_manager_secret",
    ),
]


def _write(tmp_path: Path, doc: Any) -> Path:
    env_dir = tmp_path / "team-a"
    env_dir.mkdir()
    (env_dir / "env.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return env_dir


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_shipped_envs_load(env: str) -> None:
    loaded = load_env(str(REPO / "infra" / "envs" / env))
    assert loaded.name == env
    assert loaded.spec.pools


def test_base_spec_is_valid(tmp_path: Path) -> None:
    env_dir = _write(tmp_path, BASE)
    result = CliRunner().invoke(cli, ["validate", "--env", str(env_dir)])
    assert result.exit_code == 0, result.output
    assert "valid, 3 pools (h100-reserved, l4-spot, t4-gcp)" in result.output


def test_prod_is_protected_with_reserved_h100_spot_burst_and_gcp_overflow() -> None:
    spec = load_env(str(REPO / "infra" / "envs" / "prod")).spec
    assert spec.env.protected
    kinds = {(p.cloud, p.capacity) for p in spec.pools}
    assert {("aws", "reserved"), ("aws", "spot"), ("gcp", "spot")} <= kinds
    assert any(p.capacity == "reserved" and p.instance_type == "p5.48xlarge" for p in spec.pools)


@pytest.mark.parametrize(("case", "mutate", "field", "fragment"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_names_file_and_field_exits_2_and_writes_nothing(
    tmp_path: Path, case: str, mutate: Callable[[dict[str, Any]], None], field: str, fragment: str
) -> None:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    env_dir = _write(tmp_path, doc)
    result = CliRunner().invoke(cli, ["render", "--env", str(env_dir)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    expected_prefix = f"error: {env_dir / 'env.yaml'}: {field}: "
    matching = [line for line in lines if line.startswith(expected_prefix)]
    assert matching, f"no line starts with {expected_prefix!r}: {lines}"
    assert any(fragment in line for line in matching), matching
    assert sorted(p.name for p in env_dir.iterdir()) == ["env.yaml"]


def test_bad_spec_count_is_at_least_twenty() -> None:
    assert len({case for case, *_ in BAD_SPECS}) >= 20


def test_every_problem_is_reported_one_per_line(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["pools"][0]["zones"] = ["us-west-2a"]
    doc["pools"][1]["gpu"] = "h100x"
    env_dir = _write(tmp_path, doc)
    result = CliRunner().invoke(cli, ["validate", "--env", str(env_dir)])
    assert result.exit_code == 2
    fields = [line.split(": ")[2] for line in result.stderr.splitlines()]
    assert fields == ["pools[0].zones[0]", "pools[1].gpu"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("env:\n  name: dev\n  protected: [true\n", "line 4, column 1"),
        (
            "env:\n  name: dev\nenv:\n  name: other\n",
            "line 3, column 1: duplicate key 'env' (first at line 1)",
        ),
        ("env:\n\tname: dev\n", "line 2, column 1"),
    ],
    ids=["unclosed-flow", "duplicate-key", "tab-indent"],
)
def test_yaml_syntax_errors_show_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    env_dir = tmp_path / "broken"
    env_dir.mkdir()
    (env_dir / "env.yaml").write_text(text)
    result = CliRunner().invoke(cli, ["render", "--env", str(env_dir)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {env_dir / 'env.yaml'}: ")
    assert where in result.stderr
    assert sorted(p.name for p in env_dir.iterdir()) == ["env.yaml"]


def test_unknown_env_name_lists_known_envs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCTL_ENVS_DIR", str(REPO / "infra" / "envs"))
    result = CliRunner().invoke(cli, ["validate", "--env", "qa"])
    assert result.exit_code == 2
    assert "unknown env 'qa' (known: dev, prod, staging)" in result.stderr


def test_gpu_only_pool_resolves_smallest_type(tmp_path: Path) -> None:
    loaded = load_env(str(_write(tmp_path, BASE)))
    from pyctl.catalog import load_catalog
    from pyctl.spec import resolve_instance_type

    pool = loaded.spec.pool("l4-spot")
    assert pool is not None
    itype = resolve_instance_type(pool, load_catalog())
    assert itype is not None and itype.name == "g6.xlarge"
