"""Shell completion is click's own (README: `eval "$(_PYCTL_COMPLETE=bash_source pyctl)"`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PYCTL = Path(sys.executable).parent / "pyctl"


def run(**env: str) -> str:
    return subprocess.run(
        [str(PYCTL)], env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout


def test_bash_source_prints_a_completion_function():
    assert "_pyctl_completion()" in run(_PYCTL_COMPLETE="bash_source")


def test_commands_and_subcommands_complete():
    assert "plain,watchdog" in run(_PYCTL_COMPLETE="bash_complete", COMP_WORDS="pyctl wa", COMP_CWORD="1")
    words = run(_PYCTL_COMPLETE="bash_complete", COMP_WORDS="pyctl watchdog ", COMP_CWORD="2")
    assert {"plain,run", "plain,report", "plain,keep"} <= set(words.split())


def test_env_completes_to_the_env_names():
    words = run(_PYCTL_COMPLETE="bash_complete", COMP_WORDS="pyctl validate --env ", COMP_CWORD="3")
    assert {"plain,dev", "plain,staging", "plain,prod"} <= set(words.split())
    assert run(_PYCTL_COMPLETE="bash_complete", COMP_WORDS="pyctl cost --env st", COMP_CWORD="3").split() == [
        "plain,staging"
    ]


def test_every_command_completes_by_name():
    from pyctl.cli import COMMANDS

    words = set(run(_PYCTL_COMPLETE="bash_complete", COMP_WORDS="pyctl ", COMP_CWORD="1").split())
    assert {f"plain,{name}" for name in COMMANDS} <= words
    assert run(_PYCTL_COMPLETE="bash_complete", COMP_WORDS="pyctl force-", COMP_CWORD="1").split() == [
        "plain,force-unlock"
    ]


def test_completing_a_command_name_imports_no_command_module():
    code = (
        "import sys; from pyctl.cli import cli\n"
        "try:\n    cli(prog_name='pyctl')\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith('pyctl.commands')))"
    )
    env = {**os.environ, "_PYCTL_COMPLETE": "bash_complete", "COMP_WORDS": "pyctl w", "COMP_CWORD": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["plain,watchdog", "LOADED", "[]"]
