"""infra/modules/gcp-gpu-watchdog grants exactly what the code calls and sets only settings the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from pyctl.clouds.gcp import recovery, watchdog
from pyctl.core.idle import ENVIRONMENT
from tests.terraform.tfconfig import load_module

MODULE = Path(__file__).resolve().parents[2] / "infra" / "modules" / "gcp-gpu-watchdog"
MAIN_PY = Path(__file__).resolve().parents[2] / "pyctl" / "functions" / "gpu_watchdog_gcp.py"


def declared(recover_spot: bool) -> set[str]:
    return {p for role in watchdog.iam_permissions(recover_spot).values() for p in role}


def test_custom_roles_grant_exactly_the_permissions_the_code_declares() -> None:
    text = (MODULE / "main.tf").read_text()
    granted = set(re.findall(r'"((?:compute|monitoring)\.[A-Za-z]+\.[A-Za-z]+)"', text))
    assert granted == declared(recover_spot=True)
    # Without the recovery pass, the start and operation-list permissions are not granted.
    optional = set(re.findall(r'var\.recover_spot \? \["([^"]+)"\]', text))
    assert optional == declared(True) - declared(False)


def test_each_custom_role_grants_its_verbs_permissions() -> None:
    local = load_module(MODULE).locals()
    for role in ("read", "act"):
        expression = local[f"{role}_permissions"]
        listed = set(re.findall(r'"?((?:compute|monitoring)\.[A-Za-z]+\.[A-Za-z]+)"?', str(expression)))
        optional = set(re.findall(r'var\.recover_spot \? \[\\?"?([a-zA-Z.]+)', str(expression)))
        assert listed == set(watchdog.iam_permissions(recover_spot=True)[role]), role
        assert listed - optional == set(watchdog.iam_permissions(recover_spot=False)[role]), role
    # The fallback pass resizes groups: a permission the watchdog's scale-in has already.
    assert set(recovery.iam_permissions()["act"]) == {
        "compute.instances.start",
        "compute.instanceGroupManagers.update",
    }


def test_function_environment_holds_only_variables_the_function_reads() -> None:
    text = (MODULE / "main.tf").read_text()
    block = text[text.index("environment = {") : text.index("}", text.index("environment = {"))]
    written = set(re.findall(r"^\s*(WATCHDOG_[A-Z_]+)\s*=", block, re.M))
    read_by_main = set(re.findall(r'"(WATCHDOG_[A-Z_]+)"', MAIN_PY.read_text()))
    known = {var for var, _ in ENVIRONMENT.values()} | read_by_main
    assert written <= known, written - known
    # Every core setting is set, except the AWS-only metric fields and the period and coverage, which keep
    # the core's defaults (the Ops Agent writes a point every 60 s).
    not_set = {
        "WATCHDOG_METRIC_NAMESPACE",
        "WATCHDOG_METRIC_NAME",
        "WATCHDOG_TERMINATE_ONE_TIME_SPOT",
        "WATCHDOG_PERIOD_SECONDS",
        "WATCHDOG_MIN_COVERAGE",
        "WATCHDOG_WARN_MINUTES",  # AWS only: the GCP watchdog does not warn before a stop (yet)
    }
    assert {var for var, _ in ENVIRONMENT.values()} - not_set == written - set(read_by_main)
