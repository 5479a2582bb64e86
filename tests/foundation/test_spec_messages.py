"""env.yaml messages a new user meets: line numbers on every problem, did-you-mean for unknown keys,
a hint to quote numbers that must be strings, duplicate keys naming both places."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from pyctl.cli import cli

DEV = Path(__file__).resolve().parents[2] / "infra" / "envs" / "dev" / "env.yaml"


def validate(tmp_path: Path, edit) -> tuple[int, list[str]]:
    env_dir = tmp_path / "dev"
    env_dir.mkdir()
    shutil.copy(DEV, env_dir / "env.yaml")
    path = env_dir / "env.yaml"
    path.write_text(edit(path.read_text()))
    result = CliRunner().invoke(cli, ["validate", "--env", str(env_dir)])
    return result.exit_code, [line.replace(f"{path}: ", "") for line in result.stderr.splitlines()]


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_unquoted_account_id_says_to_quote_it_with_its_line(tmp_path):
    text = DEV.read_text()
    code, lines = validate(
        tmp_path, lambda t: t.replace('account_id: "111111111111"', "account_id: 111111111111")
    )
    assert code == 2
    assert lines == [
        "error: clouds.aws.account_id: expected a string, got the number 111111111111: quote it in env.yaml "
        f'("111111111111"); unquoted YAML numbers lose leading zeros (line {line_of(text, "account_id")})'
    ]


def test_unknown_key_suggests_the_nearest_field(tmp_path):
    code, lines = validate(
        tmp_path, lambda t: t.replace("    root_volume_gb: 150", "    root_volume_gib: 150")
    )
    assert code == 2
    (line,) = lines
    assert line.startswith(
        "error: pools[0].root_volume_gib: unknown key (did you mean 'root_volume_gb'?) (line "
    )


def test_unknown_key_far_from_any_field_gets_no_guess(tmp_path):
    code, lines = validate(tmp_path, lambda t: t.replace("watchdog:\n", "watchdog:\n  zzz: 1\n"))
    assert code == 2 and "did you mean" not in lines[0] and "unknown key (line " in lines[0]


def test_cross_field_problems_carry_the_line(tmp_path):
    text = DEV.read_text()
    code, lines = validate(tmp_path, lambda t: t.replace("    desired: 1\n", "    desired: 5\n"))
    assert code == 2
    assert lines == [
        f"error: pools[0].desired: desired (5) is outside min..max (0..2) (line {line_of(text, 'desired: 1')})"
    ]


def test_a_missing_key_points_at_its_mapping(tmp_path):
    text = DEV.read_text()
    code, lines = validate(tmp_path, lambda t: t.replace("    region: us-east-1\n    vpc_id", "    vpc_id"))
    assert code == 2
    assert lines == [f"error: clouds.aws.region: required (line {line_of(text, '  aws:')})"]


def test_a_duplicate_key_names_both_places(tmp_path):
    code, lines = validate(
        tmp_path, lambda t: t.replace("  protected: false\n", "  protected: false\n  protected: true\n")
    )
    first = line_of(DEV.read_text(), "protected: false")
    assert code == 2
    assert lines == [f"error: line {first + 1}, column 3: duplicate key 'protected' (first at line {first})"]


def test_gpu_names_in_env_yaml_are_case_insensitive(tmp_path):
    pool = "  - name: l40s-serve\n    cloud: aws\n    zones: [us-east-1a]\n    gpu: L40S\n    capacity: spot\n    max: 2\n"
    code, lines = validate(tmp_path, lambda t: t.replace("model_cache:", pool + "model_cache:", 1))
    assert code == 0, lines
