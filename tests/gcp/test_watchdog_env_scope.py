"""Env scoping on GCP: two envs in one fake project. Each env's run lists (by the `pyctl-env` label in the
Compute list filter), reads, stops and shrinks only its own VMs; an unscoped run is refused before any call;
the module's IAM condition limits the act role to the env's name prefix."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fakes.gcp_compute import ComputeFake
from fakes.gcp_monitoring import MonitoringFake

from pyctl.clouds.gcp import compute, watchdog
from pyctl.core.idle import Settings
from pyctl.core.watchdog import UnscopedRun
from tests.terraform.tfconfig import INFRA, load_module

from .conftest import NOW, PROJECT

IDLE = [[0.0, 1.0, 2.0, 4.9] * 10]
ENVS = ("dev", "prod")


def two_envs(cf: ComputeFake, mf: MonitoringFake) -> None:
    """Per env: an idle standalone VM, a busy one and an idle member of a group above its minimum, labelled
    as gcp-gpu-pool labels them (`pyctl-env`), named pyctl-<env>-..."""
    for env in ENVS:
        labels = {compute.ENV_LABEL: env}
        for name, values in ((f"pyctl-{env}-idle", IDLE), (f"pyctl-{env}-busy", [[60.0] * 40])):
            doc = cf.add_instance(name, labels=labels)
            mf.seed(doc["id"], values, NOW)
        group = cf.add_group(f"pyctl-{env}-pool", target_size=1)
        doc = cf.add_instance(f"pyctl-{env}-pool-0", group=group, labels={**labels, "pyctl-min-size": "0"})
        mf.seed(doc["id"], IDLE, NOW)
    doc = cf.add_instance("no-env-label", labels={})  # idle, opted in, no env: no env's watchdog sees it
    mf.seed(doc["id"], IDLE, NOW)


def touched(cf: ComputeFake) -> set[str]:
    """VM and group names in mutating requests (stop/start/delete, the group's deleteInstances)."""
    names: set[str] = set()
    for method, path, body in cf.calls:
        if method != "POST" or path.endswith("/wait"):
            continue
        names.add(re.sub(r"/(stop|start|delete|deleteInstances)$", "", path).rsplit("/", 1)[1])
        names.update(url.rsplit("/", 1)[1] for url in body.get("instances", []))
    return names


def test_each_envs_run_touches_only_its_own_vms(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    two_envs(compute_fake, monitoring_fake)
    for env in ENVS:
        compute_fake.calls.clear()
        monitoring_fake.requests.clear()
        result = watchdog.run(PROJECT, Settings(env=env), now=NOW)
        own = {f"pyctl-{env}-idle", f"pyctl-{env}-busy", f"pyctl-{env}-pool-0"}
        assert {d.instance_id for d in result.decisions} == own
        filters = [q["filter"] for m, path, q in compute_fake.calls if m == "GET" and "filter" in q]
        assert filters and all(f'(labels.pyctl-env = "{env}")' in f for f in filters)
        [request] = monitoring_fake.requests
        wanted = {compute_fake.instances[("us-central1-a", n)]["id"] for n in own - {f"pyctl-{env}-busy"}}
        assert set(re.findall(r'"(\d+)"', request.filter)) <= {
            compute_fake.instances[("us-central1-a", n)]["id"] for n in own
        } and wanted <= set(re.findall(r'"(\d+)"', request.filter))
        assert touched(compute_fake) == {f"pyctl-{env}-idle", f"pyctl-{env}-pool", f"pyctl-{env}-pool-0"}
        assert not result.errors
    for env in ENVS:
        assert compute_fake.status(f"pyctl-{env}-idle") == "TERMINATED"
        assert compute_fake.status(f"pyctl-{env}-busy") == "RUNNING"
        assert compute_fake.groups[("zones/us-central1-a", f"pyctl-{env}-pool")]["targetSize"] == 0
    assert compute_fake.status("no-env-label") == "RUNNING"


def test_one_envs_run_leaves_the_other_env_untouched(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    two_envs(compute_fake, monitoring_fake)
    watchdog.run(PROJECT, Settings(env="dev"), now=NOW)
    assert not {n for n in touched(compute_fake) if n.startswith("pyctl-prod-")}
    assert compute_fake.status("pyctl-prod-idle") == compute_fake.status("pyctl-prod-pool-0") == "RUNNING"
    assert compute_fake.groups[("zones/us-central1-a", "pyctl-prod-pool")]["targetSize"] == 1


def test_an_unscoped_run_is_refused_before_any_call(
    compute_fake: ComputeFake, monitoring_fake: MonitoringFake
) -> None:
    two_envs(compute_fake, monitoring_fake)
    compute_fake.calls.clear()
    with pytest.raises(UnscopedRun, match="needs an env"):
        watchdog.run(PROJECT, Settings(), now=NOW)
    assert compute_fake.calls == [] and monitoring_fake.requests == []


def test_the_function_refuses_to_start_without_its_env() -> None:
    from pyctl.functions.gpu_watchdog_gcp import WatchdogEnvironment

    with pytest.raises(ValueError, match="WATCHDOG_ENV"):
        WatchdogEnvironment.from_environ({"WATCHDOG_PROJECT": PROJECT})
    scoped = WatchdogEnvironment.from_environ({"WATCHDOG_PROJECT": PROJECT, "WATCHDOG_ENV": "dev"})
    assert scoped.settings.env == "dev"


def test_the_module_passes_its_env_and_the_stack_limits_the_act_role_to_the_envs_names() -> None:
    module = load_module(INFRA / "modules" / "gcp-gpu-watchdog")
    environment = json.dumps(module.locals()["environment"])
    assert re.search(r'"WATCHDOG_ENV":\s*"\$\{var\.env\}"', environment), environment
    stack: Any = load_module(INFRA / "stacks" / "gcp").labelled("module")["gpu_watchdog"]
    assert stack["env"] == "${var.env.name}"
    # Compute IAM Conditions cannot see labels; the name prefix is the condition (README, "Env scope").
    assert stack["act_on_name_prefix"] == "pyctl-${var.env.name}-"
    condition = str(module.locals()["act_condition"])
    assert "resource.name.extract" in condition and "startsWith" in condition
    assert "${var.act_on_name_prefix}" in condition


def test_the_label_filter_is_what_the_fake_and_the_api_parse() -> None:
    text = compute.label_filter({compute.OPT_IN_LABEL: "true", compute.ENV_LABEL: "dev"}, "RUNNING")
    assert text == '(labels.auto-shutdown = "true") AND (labels.pyctl-env = "dev") AND (status = "RUNNING")'
