"""The env root module is rendered from one template and the stacks' own variable types."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from pyctl.cli import cli
from pyctl.env_root import MARKER, attributes, object_attribute, variable_types

REPO = Path(__file__).resolve().parents[2]

VARIABLES = """variable "settings" {
  description = "x"
  type = object({
    schedule = optional(string, "rate(15 minutes)") # a paren in a string, a bracket in a comment ]
    jobs = optional(map(object({
      pool = string
    })), {})
  })
  default = {}

  validation {
    condition     = var.settings.schedule != "("
    error_message = "bad"
  }
}

variable "tags" {
  type        = map(string)
  nullable    = false
}
"""


def test_types_are_read_as_written_strings_and_comments_included(tmp_path: Path) -> None:
    (tmp_path / "variables.tf").write_text(VARIABLES)
    types = variable_types(tmp_path / "variables.tf")
    assert types["tags"] == "map(string)"
    assert types["settings"].startswith('object({\n    schedule = optional(string, "rate(15 minutes)")')
    assert types["settings"].endswith("})), {})\n  })")
    assert (
        object_attribute(types["settings"], "jobs")
        == "optional(map(object({\n      pool = string\n    })), {})"
    )


def test_attributes_align_like_terraform_fmt() -> None:
    text = attributes(
        [("description", '"d"'), ("type", "object({\n  })"), ("default", "{}"), ("nullable", "false")]
    )
    assert text.splitlines() == [
        '  description = "d"',
        "  type = object({",
        "  })",
        "  default  = {}",
        "  nullable = false",
    ]


def _env(tmp_path: Path, name: str) -> Path:
    infra = tmp_path / "infra"
    shutil.copytree(REPO / "infra" / "stacks", infra / "stacks")
    env_dir = infra / "envs" / name
    env_dir.mkdir(parents=True)
    shutil.copy(REPO / "infra" / "envs" / name / "env.yaml", env_dir / "env.yaml")
    return env_dir


def test_a_new_env_gets_the_same_root_as_the_committed_one(tmp_path: Path) -> None:
    env_dir = _env(tmp_path, "prod")
    assert CliRunner().invoke(cli, ["render", "--env", str(env_dir)]).exit_code == 0
    for name in ("main.tf", "variables.tf", "outputs.tf"):
        assert (env_dir / name).read_text() == (REPO / "infra" / "envs" / "prod" / name).read_text()
    assert "type = any" not in (env_dir / "variables.tf").read_text()


def test_check_fails_when_a_stack_type_changed(tmp_path: Path) -> None:
    env_dir = _env(tmp_path, "dev")
    runner = CliRunner()
    assert runner.invoke(cli, ["render", "--env", str(env_dir)]).exit_code == 0
    stack = tmp_path / "infra" / "stacks" / "aws" / "variables.tf"
    stack.write_text(
        stack.read_text().replace(
            "    vpc_id     = string\n", "    vpc_id     = string\n    extra      = optional(string)\n"
        )
    )
    result = runner.invoke(cli, ["render", "--env", str(env_dir), "--check"])
    assert result.exit_code == 1
    assert "variables.tf: differs from env.yaml" in result.output


def test_a_hand_written_root_is_left_alone(tmp_path: Path) -> None:
    env_dir = _env(tmp_path, "dev")
    (env_dir / "main.tf").write_text('resource "terraform_data" "x" {}\n')
    assert CliRunner().invoke(cli, ["render", "--env", str(env_dir)]).exit_code == 0
    assert (env_dir / "main.tf").read_text() == 'resource "terraform_data" "x" {}\n'
    assert not (env_dir / "variables.tf").exists()
    assert (
        (REPO / "infra" / "envs" / "dev" / "main.tf").read_text().startswith(MARKER)
    )  # the committed one is rendered
