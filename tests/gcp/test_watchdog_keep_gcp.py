"""`pyctl watchdog keep VM --env NAME` on GCP: the label the GCP watchdog reads, scoped to the env."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fakes.gcp_compute import ComputeFake
from fakes.gcp_monitoring import MonitoringFake

from pyctl.clouds.gcp.compute import keep_until_from_label
from pyctl.commands.watchdog import watchdog_group
from pyctl.errors import PyctlError

from .conftest import serving_compute


@pytest.fixture
def staging(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ComputeFake]:
    with serving_compute("acme-ml-staging", datetime.now(UTC), monkeypatch) as fake:
        yield fake


def invoke(*args: str):
    return CliRunner().invoke(watchdog_group, list(args))


def test_keep_labels_the_vm_and_the_watchdog_then_leaves_it_alone(
    staging: ComputeFake, monitoring_fake: MonitoringFake
):
    now = datetime.now(UTC)
    doc = staging.add_instance(
        "vm-1", "us-central1-b", labels={"pyctl-env": "staging"}, started=now - timedelta(hours=3)
    )
    monitoring_fake.seed(doc["id"], [[0.5] * 40], now)
    kept = invoke("keep", "vm-1", "--env", "staging", "--for", "4h")
    assert kept.exit_code == 0, kept.output
    label = doc["labels"]["pyctl-keep-until"]
    until = datetime.fromisoformat(keep_until_from_label(label))
    assert timedelta(hours=3, minutes=58) < until - now <= timedelta(hours=4)
    assert f"vm-1 (us-central1-b): kept until {label}" in kept.output
    run = CliRunner().invoke(
        watchdog_group, ["run", "--env", "staging", "--cloud", "gcp", "--dry-run", "--json"]
    )
    assert run.exit_code == 0, run.output
    (decision,) = json.loads(run.output)
    assert (decision["verdict"], decision["action"]) == ("excluded", "none")
    assert decision["reason"].startswith("keep-alive until")

    cleared = invoke("keep", "vm-1", "--env", "staging", "--clear")
    assert cleared.exit_code == 0, cleared.output
    assert "pyctl-keep-until" not in doc["labels"] and doc["labels"]["pyctl-env"] == "staging"


def test_keep_refuses_a_vm_of_another_env_and_changes_nothing(staging: ComputeFake):
    doc = staging.add_instance("vm-prod", "us-central1-a", labels={"pyctl-env": "prod"})
    result = invoke("keep", "vm-prod", "--env", "staging", "--for", "1h")
    assert isinstance(result.exception, PyctlError) and result.exception.exit_code == 2
    assert "VM vm-prod (us-central1-a) belongs to env 'prod', not env 'staging': not changed" in str(
        result.exception
    )
    assert "pyctl-keep-until" not in doc["labels"]
    missing = invoke("keep", "nope", "--env", "staging", "--for", "1h")
    assert "VM nope not found in project acme-ml-staging zones us-central1-a, us-central1-b" in str(
        missing.exception
    )
