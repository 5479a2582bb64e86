"""Views of the watchdog and recovery modules through the tests' one HCL loader (tests/terraform/tfconfig.py):
python-hcl2's own keys stripped, so a parsed block compares equal to the dict it means."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.terraform.tfconfig import INTERNAL_KEYS, load_module


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k not in INTERNAL_KEYS}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def module_locals(directory: Path) -> dict[str, Any]:
    return plain(load_module(directory).locals())


def policy_document(directory: Path, name: str) -> dict[str, Any]:
    """The body of `data.aws_iam_policy_document.<name>`."""
    module = load_module(directory)
    return plain(
        next(
            r.body for r in module.resources("data") if r.type == "aws_iam_policy_document" and r.name == name
        )
    )
