"""`pyctl watchdog run` on GCP: `--cloud gcp --project P` without an env file, and `--env NAME` covering the
env's GCP pools next to its AWS region (moto for AWS, the Compute and Monitoring fakes for GCP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fakes.gcp_compute import ComputeFake
from fakes.gcp_monitoring import MonitoringFake

from pyctl.commands.watchdog import watchdog_group

from .conftest import PROJECT, serving_compute

IDLE = [[0.5] * 40]
BUSY = [[90.0] * 40]


def seed(cf: ComputeFake, mf: MonitoringFake, name: str, values: list[list[float]], **kw: Any) -> None:
    now = datetime.now(UTC)  # the command decides on the real clock
    doc = cf.add_instance(name, started=now - timedelta(hours=3), **kw)
    mf.seed(doc["id"], values, now)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(watchdog_group, ["run", *args], catch_exceptions=False)


def test_cloud_gcp_with_a_project_runs_without_an_env_file(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    seed(compute_fake, monitoring_fake, "idle-l4", IDLE)
    seed(compute_fake, monitoring_fake, "busy-l4", BUSY)
    result = invoke("--cloud", "gcp", "--project", PROJECT, "--all-envs", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    decisions = {d["instance_id"]: d for d in json.loads(result.output)}
    assert (decisions["idle-l4"]["action"], decisions["idle-l4"]["outcome"]) == ("stop", "dry-run")
    assert decisions["busy-l4"]["verdict"] == "busy"
    assert decisions["idle-l4"]["hourly_cost"] is not None  # priced from the catalog
    assert compute_fake.status("idle-l4") == "RUNNING"


def test_zone_option_limits_the_listing_and_a_run_stops_the_idle_vm(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    seed(compute_fake, monitoring_fake, "idle-a", IDLE, zone="us-central1-a")
    seed(compute_fake, monitoring_fake, "idle-b", IDLE, zone="us-central1-b")
    result = invoke("--cloud", "gcp", "--project", PROJECT, "--all-envs", "--zone", "us-central1-b")
    assert result.exit_code == 0, result.output
    assert "idle-b us-central1-b" in result.output and "idle-a" not in result.output
    assert compute_fake.status("idle-b", "us-central1-b") == "TERMINATED"
    assert compute_fake.status("idle-a") == "RUNNING"


@pytest.fixture
def staging_fakes(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ComputeFake]:
    """A Compute fake holding the staging env's project (acme-ml-staging)."""
    with serving_compute("acme-ml-staging", datetime.now(UTC), monkeypatch) as fake:
        yield fake


def test_env_covers_its_gcp_pools_next_to_its_aws_region(
    staging_fakes: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    staging = {"pyctl-env": "staging"}  # as gcp-gpu-pool labels the env's VMs
    seed(
        staging_fakes,
        monitoring_fake,
        "pyctl-staging-l4-overflow-x1",
        IDLE,
        zone="us-central1-b",
        labels=staging,
    )
    seed(
        staging_fakes, monitoring_fake, "elsewhere", IDLE, zone="europe-west4-a", labels=staging
    )  # not a pool zone
    # In a pool zone of the project, but another env's: not listed (label filter).
    seed(
        staging_fakes,
        monitoring_fake,
        "pyctl-dev-l4-x1",
        IDLE,
        zone="us-central1-b",
        labels={"pyctl-env": "dev"},
    )
    result = invoke("--env", "staging", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    decisions = json.loads(result.output)
    assert [(d["instance_id"], d["action"]) for d in decisions] == [("pyctl-staging-l4-overflow-x1", "stop")]
    # The env's pool zones were listed one by one; the AWS region was inspected too (moto: no instances).
    assert {p.split("/zones/")[1].split("/")[0] for _, p, _ in staging_fakes.calls} == {
        "us-central1-a",
        "us-central1-b",
    }


def test_one_run_loads_the_env_file_once(
    staging_fakes: ComputeFake, monitoring_fake: MonitoringFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyctl.spec

    loads: list[str] = []
    real = pyctl.spec.load_env

    def counting(name: str, *args: Any, **kwargs: Any) -> Any:
        loads.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(pyctl.spec, "load_env", counting)
    result = invoke("--env", "staging", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert loads == ["staging"]  # AWS and GCP targets from one env.yaml read


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--env", "staging", "--project", PROJECT), "--env and --project/--zone exclude each other"),
        (("--cloud", "gcp"), "--cloud gcp needs --project"),
        (("--cloud", "gcp", "--project", PROJECT, "--region", "us-east-1"), "--region is for AWS"),
        (("--cloud", "aws", "--project", PROJECT), "--project and --zone are for --cloud gcp"),
    ],
)
def test_conflicting_options_are_refused_with_one_clear_line(args: tuple[str, ...], message: str) -> None:
    from pyctl.errors import PyctlError

    with pytest.raises(PyctlError, match=message):
        CliRunner().invoke(watchdog_group, ["run", *args], catch_exceptions=False)
