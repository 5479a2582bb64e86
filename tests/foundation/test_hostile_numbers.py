"""`pyctl size` / `pyctl cost` refuse NaN and infinity (which pass click's range checks: every comparison
with NaN is false) and never print NaN/Infinity in JSON; error lines are escaped and cut."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pyctl.cli import MAX_ERROR_LINE, PyctlGroup, cli, error_line
from pyctl.errors import PyctlError

DEV = str(Path(__file__).resolve().parents[2] / "infra" / "envs" / "dev")


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "infinity"])
def test_size_refuses_a_non_finite_headroom(value):
    result = CliRunner().invoke(cli, ["size", "--model", "llama-3-8b", "--min-headroom", value, "--json"])
    assert result.exit_code == 2
    assert "Invalid value for '--min-headroom'" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("value", ["nan", "inf", "1e400"])
def test_cost_refuses_a_non_finite_throughput(value):
    result = CliRunner().invoke(cli, ["cost", "--env", DEV, "--tokens-per-second", value, "--json"])
    assert result.exit_code == 2
    assert "Invalid value for '--tokens-per-second'" in result.stderr
    assert result.stdout == ""


def test_size_refuses_a_parameter_count_that_overflows():
    result = CliRunner().invoke(cli, ["size", "--params", "9" * 400 + "B", "--layers", "32"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: --params: '{'9' * 40}': more than 1e+15 parameters"]


def test_size_and_cost_json_is_strict_json():
    size = CliRunner().invoke(cli, ["size", "--model", "llama-3-8b", "--json"])
    cost = CliRunner().invoke(cli, ["cost", "--env", DEV, "--tokens-per-second", "1500", "--json"])
    assert size.exit_code == cost.exit_code == 0
    _strict_json(size.stdout)
    _strict_json(cost.stdout)


def test_error_line_escapes_invisible_characters_and_cuts():
    assert error_line("a\x1b[2Jb\u200bc\td") == "a\\x1b[2Jb\\u200bc\\td"
    long = error_line("x" * 5000)
    assert len(long) == MAX_ERROR_LINE and long.endswith("...")


def test_every_error_line_is_printed_escaped():
    @click.group(cls=PyctlGroup)
    def group() -> None:
        pass

    @group.command()
    def boom() -> None:
        raise PyctlError("first \x1b]0;title\x07 problem\nsecond\u202e problem")

    result = CliRunner().invoke(group, ["boom"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: first \\x1b]0;title\\x07 problem",
        "error: second\\u202e problem",
    ]
