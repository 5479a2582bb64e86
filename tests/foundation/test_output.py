"""One output layer: nothing copyable is cut (piped or narrow), natural sort, prices in the catalog,
case-insensitive GPU names, --json, NO_COLOR, money printed as one figure; validate/doctor exits."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from pyctl.cli import cli
from pyctl.commands.deploy import _summary_echo
from pyctl.deploy import GateFlags
from pyctl.output import natural_key, table

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def offline_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "NO_COLOR"}
    env.update(
        {
            "PYCTL_TERRAFORM": str(BIN / "pyctl-terraform"),
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.update(extra)
    return env


def in_terminal(args: list[str], env: dict[str, str]) -> str:
    """stdout of `pyctl ARGS` when stdout is a terminal (a pseudo-terminal 120 columns wide)."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(BIN / "pyctl"), *args],
            stdout=terminal,
            stderr=subprocess.DEVNULL,
            env={**env, "COLUMNS": "120"},
        )
        os.close(terminal)
        chunks = []
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # the terminal closes when the process exits
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=120)
        return b"".join(chunks).decode()
    finally:
        os.close(controller)


def test_natural_sort_of_instance_types():
    names = ["g4dn.12xlarge", "g4dn.metal", "g4dn.2xlarge", "g4dn.xlarge", "p5.48xlarge", "p5.4xlarge"]
    assert sorted(names, key=natural_key) == [
        "g4dn.xlarge", "g4dn.2xlarge", "g4dn.12xlarge", "g4dn.metal", "p5.4xlarge", "p5.48xlarge",
    ]  # fmt: skip


def test_piped_catalog_prints_every_type_in_full_sorted_naturally(tmp_path):
    out = subprocess.run(
        [str(BIN / "pyctl"), "catalog", "--cloud", "aws"],
        capture_output=True, text=True, check=True, env=offline_env(tmp_path, COLUMNS="60"),
    ).stdout  # fmt: skip
    assert "…" not in out
    types = [line.split()[1] for line in out.splitlines()[1:] if line.startswith(" aws")]
    assert "p6-b200.48xlarge" in types and "g6e.12xlarge" in types
    assert types == sorted(types, key=natural_key)
    assert types.index("g4dn.2xlarge") < types.index("g4dn.12xlarge")


def test_a_narrow_table_folds_other_columns_and_keeps_the_copy_column_whole():
    tbl = table("type", "note", copy="type")
    tbl.add_row("p6-b200.48xlarge", "a long note that has to fold onto several lines")
    buffer = io.StringIO()
    Console(file=buffer, width=30).print(tbl)
    assert "p6-b200.48xlarge" in buffer.getvalue() and "…" not in buffer.getvalue()


def test_catalog_gpu_is_case_insensitive_and_a_family_name_lists_both_sizes():
    upper = CliRunner().invoke(cli, ["catalog", "--gpu", "H100", "--json"])
    assert upper.exit_code == 0, upper.output
    assert {row["gpu"] for row in json.loads(upper.output)} == {"h100"}
    a100 = json.loads(CliRunner().invoke(cli, ["catalog", "--gpu", "A100", "--json"]).output)
    assert {row["gpu"] for row in a100} == {"a100-40gb", "a100-80gb"}


def test_catalog_shows_prices_from_the_price_data():
    rows = json.loads(
        CliRunner().invoke(cli, ["catalog", "--gpu", "h100", "--cloud", "aws", "--json"]).output
    )
    p5 = {r["instance_type"]: r for r in rows}["p5.48xlarge"]
    assert p5["on_demand_hourly"] == 55.04 and 0 < p5["spot_hourly"] < 55.04
    text = CliRunner().invoke(cli, ["catalog", "--gpu", "h100", "--cloud", "aws"]).output
    assert "on-demand $/h" in text and "$55.04" in text


def test_validate_prints_a_singular_pool_and_json():
    dev = str(REPO / "infra/envs/dev")
    assert "valid, 1 pool (l4-spot)" in CliRunner().invoke(cli, ["validate", "--env", dev]).output
    out = json.loads(CliRunner().invoke(cli, ["validate", "--env", dev, "--json"]).output)
    assert out == {"path": out["path"], "env": "dev", "valid": True, "pools": ["l4-spot"]}


def test_doctor_strict_fails_on_warnings_and_json_lists_checks(tmp_path):
    dev = str(REPO / "infra/envs/dev")
    env = offline_env(tmp_path)

    def doctor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "pyctl"), "doctor", "--env", dev, *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )

    lenient = doctor("--json")
    assert lenient.returncode == 0, lenient.stderr
    checks = {c["check"]: c["status"] for c in json.loads(lenient.stdout)}
    assert checks["aws credentials"] == "warn" and checks["terraform"] == "ok"
    strict = doctor("--strict")
    assert strict.returncode == 1
    assert "doctor --strict: a check warned" in strict.stderr


def test_colour_in_a_terminal_and_none_under_no_color(tmp_path):
    env = offline_env(tmp_path)
    green = "\x1b[32m"  # the status "ok"
    coloured = in_terminal(["doctor"], env)
    assert green in coloured and "ok" in coloured
    plain = in_terminal(["doctor"], {**env, "NO_COLOR": "1"})  # no colour; bold may stay (no-color.org)
    assert green not in plain and not re.search(r"\x1b\[[0-9;]*3[0-7]m", plain) and "ok" in plain


def test_money_is_one_figure_in_a_terminal(tmp_path):
    out = in_terminal(["cost", "--env", str(REPO / "infra/envs/prod")], offline_env(tmp_path))
    assert "$73,930" in out  # no colour codes inside the figure (rich's number highlighting is off)


@pytest.mark.parametrize(("no_color", "coloured"), [(None, True), ("1", False)])
def test_the_attention_block_is_red_unless_no_color(monkeypatch, no_color, coloured):
    import click

    if no_color:
        monkeypatch.setenv("NO_COLOR", no_color)
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    text = "Plan for env prod (PROTECTED)\n!!! ATTENTION !!!\n  !! aws_s3_bucket.cache: destroyed\nafter\n"

    @click.command()
    def show() -> None:
        _summary_echo(GateFlags())(text)

    out = CliRunner().invoke(show, color=True).output
    assert bool(ANSI.search(out)) is coloured
    lines = out.splitlines()
    assert ANSI.sub("", out).splitlines() == text.splitlines()
    assert not ANSI.search(lines[0]) and not ANSI.search(lines[3])  # only the block is red


def test_gate_hints_match_the_plan_summary_and_are_reworded_when_the_flag_is_given(monkeypatch):
    import click

    from pyctl.commands.deploy import _GATE_HINTS
    from pyctl.core.plan_summary import Finding, PlanSummary, render_text

    monkeypatch.delenv("NO_COLOR", raising=False)
    findings = (
        Finding("reserved_capacity", "module.pool.x", "destroyed", gate="allow_destroy"),
        Finding("capacity_block", "module.pool.y", "bought", gate="confirm_purchase"),
    )
    text = render_text(PlanSummary("prod", True, {"delete": 1}, (), (), findings, (("delete", "x"),)))
    assert set(_GATE_HINTS) <= set(text.splitlines())  # the summary still prints the lines we reword

    @click.command()
    def show() -> None:
        _summary_echo(GateFlags(allow_destroy=True))(text)

    out = ANSI.sub("", CliRunner().invoke(show).output)
    assert "--allow-destroy given" in out and "needs --allow-destroy" not in out
    assert "needs --confirm-purchase" in out  # not given: still asked for


@pytest.mark.parametrize(
    "args",
    [
        ["size", "--model", "llama-3-70b", "--top", "50", "--explain"],
        ["cost", "--env", str(REPO / "infra/envs/prod")],
        ["catalog"],
    ],
)
def test_piped_tables_are_never_cut_at_80_columns(tmp_path, args):
    out = subprocess.run(
        [str(BIN / "pyctl"), *args],
        capture_output=True,
        text=True,
        check=True,
        env=offline_env(tmp_path, COLUMNS="80"),
    ).stdout
    assert "…" not in out
    assert any(len(line) > 80 for line in out.splitlines())  # wider than the terminal would be: not wrapped
