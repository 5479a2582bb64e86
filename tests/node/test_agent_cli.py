"""`pyctl-agent --version` / `-V` and `-h` (the node box runs `--version` from the installed bundle)."""

from __future__ import annotations

import re

from click.testing import CliRunner

from pyctl.agent.cli import main


def test_version_names_the_agent_and_its_version() -> None:
    for flag in ("--version", "-V"):
        result = CliRunner().invoke(main, [flag])
        assert result.exit_code == 0
        assert re.fullmatch(r"pyctl-agent \d+\.\d+\.\d+\S*\n", result.output), result.output


def test_short_help_works_on_the_group_and_its_commands() -> None:
    result = CliRunner().invoke(main, ["-h"])
    assert result.exit_code == 0 and "Usage:" in result.output and "watch" in result.output
    for command in ("watch", "resume", "fetch-model"):
        result = CliRunner().invoke(main, [command, "-h"])
        assert result.exit_code == 0 and f"{command} [OPTIONS]" in result.output, command


def test_short_help_survives_the_command_having_run_on_its_own_first() -> None:
    """click caches a command's help option from its first context: fetch-model runs on its own (its own
    entry point and tests) and under the group, and -h must work both ways in one process."""
    from pyctl.agent.fetch_model import fetch_model

    assert CliRunner().invoke(fetch_model, ["--help"]).exit_code == 0
    result = CliRunner().invoke(main, ["fetch-model", "-h"])
    assert result.exit_code == 0, result.output
