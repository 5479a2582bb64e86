"""Prompt semantics of `pyctl up` / `destroy`, Terraform's: a declined prompt exits 1 and applies
nothing; no prompt without a terminal (exit 2 naming --yes); a protected env's destroy asks for its name.

The interactive cases run the real `pyctl` executable with a pseudo-terminal on stdin, as a user's shell
would; typed-ahead answers wait in the terminal's buffer until the prompt reads them.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

PYCTL = Path(sys.executable).parent / "pyctl"


def run_in_terminal(*args: str, answer: str) -> subprocess.CompletedProcess[str]:
    """`pyctl ARGS` with a terminal on stdin and `answer` typed into it; stdout/stderr captured."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode())
        return subprocess.run(
            [str(PYCTL), *args], stdin=terminal, capture_output=True, text=True, timeout=300, check=False
        )
    finally:
        os.close(terminal)
        os.close(controller)


def outputs(pyctl, env) -> dict:
    return json.loads(pyctl("output", "--env", env.dir).stdout)


def test_declining_up_exits_1_and_applies_nothing_then_yes_applies(fixture_env, pyctl):
    declined = run_in_terminal("up", "--env", str(fixture_env.dir), answer="n\n")
    assert "Do you want to apply this plan to env wf-test? [y/N]" in declined.stdout
    assert declined.returncode == 1, declined.stderr
    assert "error: up: not confirmed; nothing was applied" in declined.stderr
    assert outputs(pyctl, fixture_env) == {}

    accepted = run_in_terminal("up", "--env", str(fixture_env.dir), answer="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "gpu_capacity" in outputs(pyctl, fixture_env)


def test_without_a_terminal_up_does_not_prompt_and_names_the_flag(fixture_env):
    piped = subprocess.run(
        [str(PYCTL), "up", "--env", str(fixture_env.dir)],
        input="y\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert piped.returncode == 2
    assert "[y/N]" not in piped.stdout
    assert "stdin is not a terminal" in piped.stderr and "Pass --yes (-y)" in piped.stderr
    # nothing ran: not even the render
    assert not (fixture_env.dir / ".terraform").exists()


def test_yes_is_an_alias_of_auto_approve(fixture_env, pyctl):
    result = pyctl("up", "--env", fixture_env.dir, "-y")
    assert result.exit_code == 0, result.output
    assert "gpu_capacity" in outputs(pyctl, fixture_env)


def test_a_protected_destroy_needs_the_env_name_typed(make_env, pyctl):
    prod = make_env("wf-prod", protected=True)
    pyctl("up", "--env", prod.dir, "--yes")

    answered_y = run_in_terminal("destroy", "--env", str(prod.dir), "--allow-destroy", answer="y\n")
    assert "Env wf-prod is protected: type its name to confirm" in answered_y.stdout
    assert answered_y.returncode == 1, answered_y.stderr
    assert "gpu_capacity" in outputs(pyctl, prod)  # one `y` destroys nothing
    # the flag was given: the summary says so instead of asking for it
    assert "--allow-destroy given" in answered_y.stdout
    assert "needs --allow-destroy" not in answered_y.stdout

    typed = run_in_terminal("destroy", "--env", str(prod.dir), "--allow-destroy", answer="wf-prod\n")
    assert typed.returncode == 0, typed.stderr
    assert outputs(pyctl, prod) == {}


def test_plan_json_gives_the_summary_facts(fixture_env, pyctl, tmp_path):
    result = pyctl("plan", "--env", fixture_env.dir, "--json", "--out", tmp_path / "p.tfplan")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["env"] == "wf-test" and out["has_changes"] is True
    assert out["counts"]["create"] == len([c for c in out["changes"] if c["action"] == "create"]) > 0
    assert {p["pool"] for p in out["pools"]} and all(p["instances_before"] == 0 for p in out["pools"])
    assert out["plan_file"].endswith("p.tfplan") and out["manifest"].endswith("p.tfplan.manifest.json")
