"""fmt, Terraform's own config loader, and the references/module wiring of every module under infra/."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .tfconfig import INFRA, REPO_ROOT, core_load_errors, load_module, module_dirs, wiring_problems

MODULE_DIRS = module_dirs()


def test_every_kind_of_module_is_covered() -> None:
    names = {str(d.relative_to(INFRA)) for d in MODULE_DIRS}
    for expected in (
        "modules/aws-gpu-pool",
        "modules/aws-gpu-pool/examples/spot-l4",
        "modules/aws-gpu-pool/examples/reserved-h100",
        "modules/aws-model-cache",
        "modules/aws-model-cache/examples/basic",
        "stacks/aws",
        "envs/dev",
        "envs/staging",
        "envs/prod",
    ):
        assert expected in names


def test_fmt_is_clean(run_terraform, tf_scratch: Path) -> None:
    proc = run_terraform("fmt", "-check", "-recursive", "-diff", "-no-color", str(INFRA), cwd=tf_scratch)
    assert proc.returncode == 0, f"terraform fmt -check found unformatted files:\n{proc.stdout}{proc.stderr}"


def test_fmt_check_fails_on_unformatted_code(run_terraform, tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('output "x" {\nvalue = 1\n}\n')
    proc = run_terraform("fmt", "-check", "-recursive", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 3 and "main.tf" in proc.stdout


def root_dirs() -> list[Path]:
    """The directories no other directory calls as a local module: loading them loads every module."""
    called = set()
    for directory in MODULE_DIRS:
        module = load_module(directory)
        for call in module.labelled("module").values():
            source = call.get("source")
            if isinstance(source, str) and source.startswith(("./", "../")):
                called.add((directory / source).resolve())
    return [d for d in MODULE_DIRS if d.resolve() not in called]


def test_every_module_loads_with_terraform_core(terraform_bin: Path, tf_scratch: Path) -> None:
    roots = root_dirs()
    assert INFRA / "stacks" / "aws" not in roots  # loaded through the envs
    assert INFRA / "envs" / "prod" in roots
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda d: core_load_errors(terraform_bin, d, tf_scratch / "load"), roots)
        errors = [e for result in results for e in result]
    assert errors == []


def test_core_loader_reports_errors_in_called_modules(terraform_bin: Path, tmp_path: Path) -> None:
    child = tmp_path / "child"
    child.mkdir()
    (child / "main.tf").write_text('variable "x" {\n  type = strin\n}\n')
    (tmp_path / "main.tf").write_text('module "c" {\n  source = "./child"\n  x      = "a"\n}\n')
    errors = core_load_errors(terraform_bin, tmp_path, tmp_path / "scratch")
    assert len(errors) == 1 and "Invalid type specification" in errors[0]


def test_core_loader_reports_configuration_errors(terraform_bin: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "main.tf").write_text(
        'resource "aws_s3_bucket" "a" {\n  count    = 1\n  for_each = {}\n}\n\nvariable "x" {\n  type = strin\n}\n'
    )
    errors = core_load_errors(terraform_bin, bad, tmp_path / "scratch")
    assert len(errors) == 1
    assert 'Invalid combination of "count" and "for_each"' in errors[0]
    assert "Invalid type specification" in errors[0]


@pytest.mark.parametrize("directory", MODULE_DIRS, ids=lambda d: str(d.relative_to(REPO_ROOT)))
def test_references_and_module_calls_resolve(directory: Path) -> None:
    assert wiring_problems(load_module(directory)) == []


def test_wiring_check_finds_broken_references(tmp_path: Path) -> None:
    child = tmp_path / "child"
    child.mkdir()
    (child / "main.tf").write_text(
        'variable "needed" {\n  type = string\n}\n\noutput "out" {\n  value = var.needed\n}\n'
    )
    (tmp_path / "main.tf").write_text(
        "locals {\n  a = 1\n}\n\n"
        'module "c" {\n  source = "./child"\n  unknown = local.b\n}\n\n'
        'output "x" {\n  value = "${var.missing}-${module.c.nope}-${data.aws_region.here.region}"\n}\n'
    )
    problems = "\n".join(wiring_problems(load_module(tmp_path)))
    assert "local.b is not defined" in problems
    assert "var.missing is not declared" in problems
    assert "module.c has no output 'nope'" in problems
    assert "data.aws_region.here is not declared" in problems
    assert "passes 'unknown', which child does not declare" in problems
    assert "does not pass required variable 'needed'" in problems
