"""Hostile env.yaml files: each refused with its one expected line, exit 2, and nothing written.

The corpus is tests/data/bad_inputs/ (NAME.yaml with NAME.expected; generate.py writes the .yaml files).
What git cannot hold (a FIFO, a device, a directory, a symlink loop, an oversized file) is built here and
run in a child process with a timeout, so a regression that blocks on a FIFO fails instead of hanging.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyctl.cli import MAX_ERROR_LINE, cli
from pyctl.spec import MAX_FILE_BYTES

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
CASES = sorted(p.stem for p in CORPUS.glob("*.yaml"))
# Commands that would write (render: tfvars, backend.hcl, the root; plan: .terraform) and the one that reads.
COMMANDS = (["validate"], ["render"], ["plan"], ["cost"])


def test_corpus_is_complete():
    assert len(CASES) >= 60
    assert sorted(p.stem for p in CORPUS.glob("*.expected")) == CASES


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("name", CASES)
def test_hostile_file_is_refused_in_one_line_and_nothing_is_written(name, tmp_path, monkeypatch):
    env_dir = tmp_path / name
    env_dir.mkdir()
    shutil.copyfile(CORPUS / f"{name}.yaml", env_dir / "env.yaml")
    monkeypatch.chdir(tmp_path)
    expected = (CORPUS / f"{name}.expected").read_text(encoding="utf-8").rstrip("\n")
    expected = "error: " + expected.replace("ENV", f"{name}/env.yaml", 1)
    for args in COMMANDS:
        result = CliRunner().invoke(cli, [*args, "--env", name])
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.splitlines() == [expected], args
        assert len(expected) <= MAX_ERROR_LINE
        assert result.stdout == ""
        assert _listing(tmp_path) == [name, f"{name}/env.yaml"], args


def _validate_in_child(env: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyctl.cli", "validate", "--env", str(env)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _device(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _directory(path: Path) -> None:
    path.mkdir()


def _loop(path: Path) -> None:
    path.symlink_to(path.name)


def _oversized(path: Path) -> None:
    path.write_bytes(b"# padding\n" * (MAX_FILE_BYTES // 10 + 1))


SPECIAL = {
    "fifo": (_fifo, "not a regular file (a FIFO); env.yaml must be a file"),
    "device": (_device, "not a regular file (a character device); env.yaml must be a file"),
    "directory": (_directory, "not a regular file (a directory); env.yaml must be a file"),
    "symlink-loop": (_loop, "cannot read: Too many levels of symbolic links"),
    "oversized": (
        _oversized,
        f"{MAX_FILE_BYTES + 10 - MAX_FILE_BYTES % 10} bytes; env.yaml may be at most {MAX_FILE_BYTES} bytes",
    ),
}


@pytest.mark.parametrize("case", sorted(SPECIAL))
def test_not_a_regular_file_is_refused_at_once(case, tmp_path):
    make, message = SPECIAL[case]
    env_dir = tmp_path / case
    env_dir.mkdir()
    make(env_dir / "env.yaml")
    result = _validate_in_child(env_dir, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"error: {case}/env.yaml: {message}"]
    assert sorted(p.name for p in env_dir.iterdir()) == ["env.yaml"]


def test_a_fifo_given_as_the_env_file_itself_is_refused(tmp_path):
    os.mkfifo(tmp_path / "env.yaml")
    result = _validate_in_child(tmp_path / "env.yaml", tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: env.yaml: not a regular file (a FIFO); env.yaml must be a file"
    ]


def test_committed_files_are_what_the_generator_writes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bad_inputs_generate", CORPUS / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert sorted(generate.CASES) == CASES
    for name, make in generate.CASES.items():
        assert (CORPUS / f"{name}.yaml").read_bytes() == make(), name


# What must still pass: the limits refuse what the clouds refuse, not more.
GOOD_AWS = (CORPUS / "generate.py").read_text(encoding="utf-8").split('AWS = """\\\n')[1].split('"""')[0]


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: "\ufeff" + t,  # a UTF-8 byte-order mark
        lambda t: t.replace("  owner: ml-platform", "  Team Name: Équipe ML / inférence @ lab+1"),
        lambda t: t.replace("  owner: ml-platform", f"  {'k' * 128}: {'v' * 256}"),
        lambda t: t.replace("  owner: ml-platform", "  owner: ''"),
        lambda t: t.replace("max: 4", "max: 10000"),
        lambda t: t.replace("key: hostile/terraform.tfstate", "key: a/b.c/terraform.tfstate"),
        lambda t: t.replace("  owner: ml-platform", "  owner: &o ml\n  second: *o"),
    ],
    ids=["utf8-bom", "unicode-tag", "longest-tag", "empty-tag-value", "max-10000", "dotted-key", "alias"],
)
def test_what_the_clouds_accept_still_validates(edit, tmp_path, monkeypatch):
    env_dir = tmp_path / "ok"
    env_dir.mkdir()
    (env_dir / "env.yaml").write_text(edit(GOOD_AWS), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "--env", "ok"])
    assert result.exit_code == 0, result.stderr


def test_a_symlinked_env_file_is_read_and_shown_by_its_own_name(tmp_path, monkeypatch):
    (tmp_path / "real.yaml").write_text(GOOD_AWS.replace("max: 4", "max: -1"), encoding="utf-8")
    env_dir = tmp_path / "linked"
    env_dir.mkdir()
    (env_dir / "env.yaml").symlink_to(tmp_path / "real.yaml")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "--env", "linked"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: linked/env.yaml: pools[0].max: ")
