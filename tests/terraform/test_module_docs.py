"""The module READMEs document every input and output, and the Terraform GPU-family rule accepts every AWS
type pyctl's catalog knows (so a spec that passes `pyctl render` also passes the plan-time validation)."""

from __future__ import annotations

import re

import pytest

from pyctl.catalog import load_catalog

from .tfconfig import INFRA, load_module

AWS_MODULES = ["aws-gpu-pool", "aws-model-cache"]


@pytest.mark.parametrize("name", AWS_MODULES)
def test_readme_documents_every_input_and_output_with_an_example(name: str) -> None:
    directory = INFRA / "modules" / name
    module = load_module(directory)
    readme = (directory / "README.md").read_text(encoding="utf-8")
    inputs = readme.split("## Inputs", 1)[1].split("## Outputs", 1)[0]
    outputs = readme.split("## Outputs", 1)[1]
    assert sorted(v for v in module.labelled("variable") if f"| `{v}` |" not in inputs) == []
    assert sorted(o for o in module.labelled("output") if f"| `{o}` |" not in outputs) == []
    assert '```hcl\nmodule "' in readme
    assert list((directory / "examples").glob("*/main.tf"))


def test_gpu_family_validation_accepts_every_catalog_type() -> None:
    variables = (INFRA / "modules" / "aws-gpu-pool" / "variables.tf").read_text()
    pattern = re.search(r'can\(regex\("(\^\(p\[3-6\][^"]+)", var\.instance_type\)\)', variables)
    assert pattern is not None
    family = re.compile(pattern.group(1).replace("\\\\", "\\"))
    names = sorted(load_catalog().instance_types["aws"])
    assert names and [n for n in names if not family.match(n)] == []
    assert not family.match("m5.large") and not family.match("c7i.48xlarge")
    stack = (INFRA / "stacks" / "aws" / "variables.tf").read_text()
    assert pattern.group(1) in stack  # the stack applies the same rule
