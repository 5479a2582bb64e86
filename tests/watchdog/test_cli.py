"""`pyctl watchdog run|report` through click's CliRunner, against moto over HTTP (real clock)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyctl.commands.watchdog import watchdog_group
from pyctl.errors import PyctlError

from .conftest import REGION, Fleet

DEV_ENV = Path(__file__).resolve().parents[2] / "infra" / "envs" / "dev" / "env.yaml"
DEV = {"pyctl:env": "dev"}  # as aws-gpu-pool tags the dev env's instances


@pytest.fixture
def live(fleet: Fleet) -> Fleet:
    """The fleet seeded around the real clock (the CLI reads it): instances are minutes old."""
    fleet.now -= timedelta(minutes=45)
    fleet.gpu_metrics(fleet.instance("idle-p4d", "p4d.24xlarge", tags=DEV), [[1.0]] * 8)
    fleet.gpu_metrics(fleet.instance("busy-g5", tags=DEV), [[70.0]])
    # A GPU type without a catalog price.
    fleet.gpu_metrics(fleet.instance("idle-g5g", "g5g.xlarge", tags=DEV), [[0.0]])
    # Not known to DescribeInstanceTypes: no GPU count, still decided.
    fleet.instance("unknown-type", "x9.future", tags=DEV)
    fleet.instance("cpu-only", "m5.large", tags={"AutoShutdown": "", **DEV})
    fleet.ec2.delete_tags(Resources=[fleet.ids["cpu-only"]], Tags=[{"Key": "AutoShutdown"}])
    return fleet


def env_dir(tmp_path: Path, protected: bool) -> Path:
    text = DEV_ENV.read_text().replace("protected: false", f"protected: {str(protected).lower()}")
    tmp_path.mkdir(parents=True)
    (tmp_path / "env.yaml").write_text(text)
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(watchdog_group, list(args), catch_exceptions=True)


def test_run_json_prints_one_array_of_decisions(live: Fleet) -> None:
    result = invoke(
        "run", "--region", REGION, "--all-envs", "--min-uptime-minutes", "0", "--dry-run", "--json"
    )
    assert result.exit_code == 0, result.output
    decisions = {d["instance_id"]: d for d in json.loads(result.output)}
    assert {k: (d["verdict"], d["action"], d["outcome"]) for k, d in decisions.items()} == {
        live.ids["idle-p4d"]: ("idle", "stop", "dry-run"),
        live.ids["busy-g5"]: ("busy", "none", ""),
        live.ids["idle-g5g"]: ("idle", "stop", "dry-run"),
        live.ids["unknown-type"]: ("no-data", "none", ""),
    }
    assert all(d["reason"] for d in decisions.values())
    assert decisions[live.ids["idle-p4d"]]["hourly_cost"] > 0  # from the catalog's prices
    assert decisions[live.ids["idle-g5g"]]["hourly_cost"] is None  # no price: none is made up
    assert live.state("idle-p4d") == "running"


def test_run_acts_and_flags_override_defaults(live: Fleet) -> None:
    young = invoke("run", "--region", REGION, "--all-envs", "--json")
    assert {d["verdict"] for d in json.loads(young.output)} == {"young"}  # default minimum uptime: 20 min
    result = invoke(
        "run", "--region", REGION, "--all-envs", "--min-uptime-minutes", "0", "--max-actions", "1"
    )
    assert result.exit_code == 0, result.output
    assert f"{live.ids['idle-p4d']} {REGION} p4d.24xlarge idle -> stop [done]" in result.output
    assert "max actions per run (1) reached" in result.output
    assert live.state("idle-p4d") in ("stopping", "stopped") and live.state("idle-g5g") == "running"


def test_run_with_an_env_uses_its_region_and_protection(live: Fleet, tmp_path: Path) -> None:
    protected = env_dir(tmp_path / "p", protected=True)
    result = invoke("run", "--env", str(protected), "--min-uptime-minutes", "0", "--json")
    assert result.exit_code == 0, result.output
    assert {(d["verdict"], d["region"]) for d in json.loads(result.output)} == {("excluded", REGION)}
    open_env = env_dir(tmp_path / "o", protected=False)
    result = invoke("run", "--env", str(open_env), "--min-uptime-minutes", "0", "--dry-run", "--json")
    assert sorted(d["action"] for d in json.loads(result.output)) == ["none", "none", "stop", "stop"]


def test_run_with_an_env_leaves_another_envs_instances_alone(live: Fleet, tmp_path: Path) -> None:
    prod = live.instance("idle-prod", "p4d.24xlarge", tags={"pyctl:env": "prod"})
    live.gpu_metrics(prod, [[1.0]] * 8)
    open_env = env_dir(tmp_path / "o", protected=False)
    result = invoke("run", "--env", str(open_env), "--min-uptime-minutes", "0", "--json")
    assert result.exit_code == 0, result.output
    decided = {d["instance_id"]: d["outcome"] for d in json.loads(result.output)}
    assert prod not in decided and decided[live.ids["idle-p4d"]] == "done"
    assert live.state("idle-prod") == "running" and live.state("idle-p4d") in ("stopping", "stopped")
    # --all-envs covers both: the prod instance is decided too (a dry run here).
    every = invoke(
        "run", "--region", REGION, "--all-envs", "--min-uptime-minutes", "0", "--dry-run", "--json"
    )
    assert prod in {d["instance_id"] for d in json.loads(every.output)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "name an env (--env NAME) or at least one region"),
        (["run", "--env", "dev", "--region", REGION], "exclude each other"),
        (["run", "--region", REGION], "without --env the watchdog would act on every env's instances"),
        (["run", "--env", "dev", "--all-envs"], "--env and --all-envs exclude each other"),
        (
            ["run", "--region", REGION, "--all-envs", "--threshold", "150"],
            "watchdog settings: threshold_percent must be in (0, 100]",
        ),
        (
            ["run", "--region", REGION, "--all-envs", "--idle-minutes", "2"],
            "watchdog settings: idle_minutes must be >= 5, got 2",
        ),
    ],
)
def test_usage_errors_are_pyctl_errors(moto_server, args: list[str], message: str) -> None:
    result = invoke(*args)
    assert isinstance(result.exception, PyctlError) and message in str(result.exception)


def test_report_lists_gpu_instances_with_verdicts_and_burn(live: Fleet) -> None:
    result = invoke("report", "--region", REGION)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = {
        i: next(line for line in lines if live.ids[i] in line) for i in ("idle-p4d", "busy-g5", "idle-g5g")
    }
    assert "young" in rows["idle-p4d"] and "21.96" in rows["idle-p4d"] and "busy" not in result.output
    assert not [line for line in lines if live.ids["cpu-only"] in line]  # no GPUs: not listed
    assert rows["idle-g5g"].replace("│", " ").split()[6:8] == ["-", "-"]  # no metrics read (young), no price
    assert "3 GPU instances" in result.output and "(1 without a price)" in result.output
    assert live.state("idle-p4d") == "running"  # the report changes nothing
