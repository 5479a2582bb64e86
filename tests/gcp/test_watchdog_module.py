"""infra/modules/gcp-gpu-watchdog grants exactly what the code calls and sets only settings the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from pyctl.clouds.gcp import watchdog
from pyctl.core.idle import ENVIRONMENT

MODULE = Path(__file__).resolve().parents[2] / "infra" / "modules" / "gcp-gpu-watchdog"
MAIN_PY = Path(__file__).resolve().parents[2] / "lambdas" / "gcp_watchdog" / "main.py"


def test_custom_roles_grant_exactly_the_permissions_the_code_declares() -> None:
    text = (MODULE / "main.tf").read_text()
    granted = set(re.findall(r'"((?:compute|monitoring)\.[A-Za-z]+\.[A-Za-z]+)"', text))
    assert granted == set(watchdog.iam_permissions(recover_spot=True))
    # Without the recovery pass, the start and operation-list permissions are not granted.
    optional = set(re.findall(r'var\.recover_spot \? \["([^"]+)"\]', text))
    assert optional == set(watchdog.iam_permissions(True)) - set(watchdog.iam_permissions(False))


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
