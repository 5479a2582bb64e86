#!/usr/bin/env python3
"""Regenerate the node agent's dependency locks: pyctl/node/requirements-<cloud>.lock.json.

For each cloud and each node CPython (pyctl.node_bundle.PYTHON_VERSIONS) this resolves
pyctl.node_bundle.DEPENDENCIES[cloud] with `pip download --only-binary=:all: --platform manylinux2014_x86_64
--implementation cp`, from the index pip is configured with (PyPI, or yours through PIP_INDEX_URL), then
swaps every binary wheel for the same version's pure-Python wheel where one exists. The lock records each
wheel's file name, version and sha256; `pyctl render` ships exactly those files and nothing else.

    python scripts/lock_node_deps.py [aws|gcp ...]

Review the diff (new versions, new distributions) before committing it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyctl.node_bundle import (  # noqa: E402
    CLOUDS,
    DEPENDENCIES,
    PLATFORMS,
    PYTHON_VERSIONS,
    canonical_name,
    lock_path,
    pip_download_argv,
)


def _parse(filename: str) -> tuple[str, str, bool]:
    """(canonical name, version, is pure) of a wheel file name."""
    parts = filename[: -len(".whl")].split("-")
    name, version, abi, platform = parts[0], parts[1], parts[-2], parts[-1]
    return canonical_name(name), version, abi == "none" and platform == "any"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pure_wheel(name: str, version: str, python_version: str, out: Path) -> Path | None:
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        "any",
        "--implementation",
        "py",
        "--abi",
        "none",
        "--python-version",
        python_version,
        "-d",
        str(out),
        f"{name}=={version}",
    ]
    if subprocess.run(argv, capture_output=True, check=False).returncode != 0:
        return None
    found = [p for p in out.glob("*.whl") if _parse(p.name)[:2] == (name, version) and _parse(p.name)[2]]
    return found[0] if found else None


def lock(cloud: str) -> dict[str, object]:
    wheels: dict[str, dict[str, object]] = {}
    pins: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="pyctl-lock-") as tmp:
        for python_version in PYTHON_VERSIONS:
            out = Path(tmp) / python_version
            argv = [*pip_download_argv(python_version), "-d", str(out), *DEPENDENCIES[cloud]]  # type: ignore[index]
            subprocess.run(argv, check=True)
            for path in sorted(out.glob("*.whl")):
                name, version, pure = _parse(path.name)
                if not pure:
                    path = _pure_wheel(name, version, python_version, Path(tmp) / "pure") or path
                pins.setdefault(name, {})[python_version] = version
                entry = wheels.setdefault(
                    path.name,
                    {"name": name, "version": version, "filename": path.name, "sha256": _sha256(path)},
                )
                entry.setdefault("python_versions", []).append(python_version)  # type: ignore[attr-defined]
    split = {n: v for n, v in pins.items() if len(set(v.values())) > 1 or len(v) != len(PYTHON_VERSIONS)}
    if split:
        raise SystemExit(
            f"{cloud}: versions differ between Python versions: {split}; pin them in DEPENDENCIES"
        )
    return {
        "format": 1,
        "cloud": cloud,
        "requirements": list(DEPENDENCIES[cloud]),  # type: ignore[index]
        "python_versions": list(PYTHON_VERSIONS),
        "platforms": list(PLATFORMS),
        "wheels": sorted(wheels.values(), key=lambda w: str(w["filename"])),
    }


def main() -> None:
    for cloud in sys.argv[1:] or list(CLOUDS):
        data = lock(cloud)
        path = lock_path(cloud)  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"{path}: {len(data['wheels'])} wheels")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
