"""The node agent as its own artifact: a deterministic, hash-pinned bundle a GPU node installs offline.

A bundle is a gzip'd tar (entries sorted, mtime 0, uid/gid 0, mode 0644, no directory entries) holding

- `wheels/<file>.whl`: the agent wheel (built here, deterministically: only the modules `pyctl-agent`
  imports, under the node distribution name `NODE_DISTRIBUTION`) and every dependency wheel, pinned by the
  committed lock `pyctl/node/requirements-<cloud>.lock.json` (`scripts/lock_node_deps.py` writes it);
- `requirements.txt`: one `name==version --hash=sha256:<hex> [--hash=...]` line per distribution shipped
  (several hashes when several wheels of one version are shipped, e.g. one per CPython version);
- `BUNDLE.json`: `{"format": 1, "distribution", "version", "cloud", "requires_python", "wheels"}`.

A node installs it with no index at all:
`python3 -m venv /opt/pyctl-agent && /opt/pyctl-agent/bin/pip install --no-index --find-links <dir>/wheels
--require-hashes -r <dir>/requirements.txt` (CPython 3.11 or 3.12, manylinux x86_64).

Dependency wheels are fetched once with `pip download --only-binary=:all: --require-hashes` from the index
pip is configured with (PyPI, or a private index through `PIP_INDEX_URL`: still pinned by the lock's
hashes) into `$PYCTL_CACHE_DIR/node-wheels` (default `~/.cache/pyctl`), verified by hash on every use, and
reused offline. Same sources and lock -> byte-identical bundle and sha256.
"""

from __future__ import annotations

import ast
import base64
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pyctl import __version__
from pyctl.errors import PyctlError
from pyctl.package import REPO_ROOT, zip_bytes

Cloud = Literal["aws", "gcp"]
CLOUDS: tuple[Cloud, ...] = ("aws", "gcp")

# The node's own distribution (nobody else holds this name on PyPI); the command stays `pyctl-agent`.
NODE_DISTRIBUTION = "pyctl-gpu-node-agent"
REQUIRES_PYTHON = ">=3.11"
BUNDLE_FORMAT = 1
# The CPython versions and platforms a bundle supports: Ubuntu 24.04 ships 3.12; 3.11 is the floor.
PYTHON_VERSIONS = ("3.11", "3.12")
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64")

# What the agent needs at run time, per cloud: the lock pins these and everything they pull in.
DEPENDENCIES: dict[Cloud, tuple[str, ...]] = {
    "aws": ("click>=8.1", "rich>=13.7", "boto3>=1.34"),
    "gcp": ("click>=8.1", "rich>=13.7", "google-cloud-storage>=2.18"),
}
# Top-level imports the agent's modules may make outside the standard library and `pyctl`, per cloud.
ALLOWED_IMPORTS: dict[Cloud, frozenset[str]] = {
    "aws": frozenset({"click", "rich", "boto3", "botocore", "s3transfer"}),
    "gcp": frozenset({"click", "rich", "google", "requests"}),
}
AGENT_ROOT = "pyctl.agent"
# Never on a node: the CLI, rendering, Terraform, the catalog, the specs.
FORBIDDEN_MODULES = (
    "pyctl.cli",
    "pyctl.commands",
    "pyctl.spec",
    "pyctl.render",
    "pyctl.env_root",
    "pyctl.catalog",
    "pyctl.templates",
    "pyctl.terraform",
    "pyctl.bundled_terraform",
    "pyctl.deploy",
    "pyctl.package",
    "pyctl.node_bundle",
)
ENTRY_POINTS = {"pyctl-agent": "pyctl.agent.cli:main"}

LOCK_DIR = Path(__file__).resolve().parent / "node"
_TAR_MODE = 0o644
_GZIP_LEVEL = 6


@dataclass(frozen=True)
class BundleInfo:
    path: Path
    sha256: str  # hex digest of the bundle file
    key: str  # object key in the model-cache bucket: `<key prefix>agent/<sha256>.tar.gz`


@dataclass(frozen=True)
class LockedWheel:
    name: str  # canonical distribution name
    version: str
    filename: str
    sha256: str
    python_versions: tuple[str, ...]  # the CPython versions this wheel is installed on


def lock_path(cloud: Cloud) -> Path:
    return LOCK_DIR / f"requirements-{cloud}.lock.json"


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def bundle_key(sha256: str, key_prefix: str = "") -> str:
    return f"{key_prefix}agent/{sha256}.tar.gz"


def cache_dir() -> Path:
    configured = os.environ.get("PYCTL_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "pyctl"


# --- the lock -----------------------------------------------------------------------------------------


def load_lock(cloud: Cloud, path: Path | None = None) -> list[LockedWheel]:
    path = path or lock_path(cloud)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PyctlError(f"{path}: node dependency lock missing; run scripts/lock_node_deps.py") from None
    except json.JSONDecodeError as exc:
        raise PyctlError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if data.get("format") != 1 or data.get("cloud") != cloud:
        raise PyctlError(f"{path}: not a format-1 node lock for {cloud}")
    wheels = []
    for entry in data["wheels"]:
        if not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
            raise PyctlError(f"{path}: {entry['filename']}: sha256 must be 64 hex digits")
        wheels.append(
            LockedWheel(
                canonical_name(entry["name"]),
                entry["version"],
                entry["filename"],
                entry["sha256"],
                tuple(entry["python_versions"]),
            )
        )
    return sorted(wheels, key=lambda w: w.filename)


# --- dependency wheels: the cache, pip download -------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_cache(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "node-wheels"


def ensure_wheels(cloud: Cloud, cache: Path | None = None, offline: bool = False) -> list[Path]:
    """The lock's wheels in the cache, each verified by hash; the missing ones fetched with pip first."""
    wheels = load_lock(cloud)
    folder = wheel_cache(cache)
    missing = [w for w in wheels if not _cached_ok(folder / w.filename, w.sha256)]
    if missing:
        if offline:
            names = ", ".join(w.filename for w in missing[:3])
            raise PyctlError(
                f"node bundle ({cloud}): {len(missing)} dependency wheel(s) not in {folder} ({names}...); "
                "run `make install` (or `python -m pyctl.node_bundle prefetch`) with network access"
            )
        _download(missing, folder)
    return [folder / w.filename for w in wheels]


def _cached_ok(path: Path, sha256: str) -> bool:
    if not path.is_file():
        return False
    if _sha256_file(path) == sha256:
        return True
    path.unlink()  # a corrupt or tampered cache entry is fetched again, never shipped
    return False


def _download(missing: Sequence[LockedWheel], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    by_python: dict[str, list[LockedWheel]] = {}
    for wheel in missing:
        by_python.setdefault(wheel.python_versions[0], []).append(wheel)
    for python_version, wheels in sorted(by_python.items()):
        with tempfile.TemporaryDirectory(prefix="pyctl-wheels-") as tmp:
            hashes: dict[tuple[str, str], list[str]] = {}
            for wheel in wheels:
                hashes.setdefault((wheel.name, wheel.version), []).append(wheel.sha256)
            requirements = Path(tmp) / "requirements.txt"
            requirements.write_text(
                "".join(
                    f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in sorted(hs)) + "\n"
                    for (name, version), hs in sorted(hashes.items())
                )
            )
            argv = [
                *pip_download_argv(python_version),
                "--no-deps",
                "--require-hashes",
                "-r",
                str(requirements),
                "-d",
                str(Path(tmp) / "out"),
            ]
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise PyctlError(
                    f"node bundle: pip download failed (python {python_version}): {_pip_error(result.stderr)}"
                )
            for wheel in wheels:
                got = Path(tmp) / "out" / wheel.filename
                if not got.is_file():
                    raise PyctlError(
                        f"node bundle: pip download did not fetch {wheel.filename}; is the lock current?"
                    )
                if _sha256_file(got) != wheel.sha256:
                    raise PyctlError(f"node bundle: {wheel.filename}: sha256 differs from the lock")
                tmp_target = folder / f".{wheel.filename}.tmp"
                tmp_target.write_bytes(got.read_bytes())
                tmp_target.replace(folder / wheel.filename)


def _pip_error(stderr: str) -> str:
    """pip's failure in one line: for a hash mismatch, which wheel and what the index served."""
    lines = [line.strip() for line in stderr.strip().splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("Expected sha256") and i > 0 and i + 1 < len(lines):
            served = lines[i + 1].split()[-1]
            return f"{lines[i - 1].split(' from ')[0]} from the index has sha256 {served}, not the lock's; refused"
    return lines[-1] if lines else "no output"


def pip_download_argv(python_version: str, implementation: str = "cp") -> list[str]:
    """`pip download` for one node Python: binary wheels only, manylinux x86_64, the configured index."""
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
    for platform in PLATFORMS:
        argv += ["--platform", platform]
    return [*argv, "--python-version", python_version, "--implementation", implementation]


# --- the agent wheel ----------------------------------------------------------------------------------


def _module_file(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports(path: Path, module: str) -> Iterator[str]:
    """Every module name `path` imports, at top level or inside functions (lazy imports count)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target == "__future__":
                continue
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def agent_modules(cloud: Cloud, root: Path = REPO_ROOT) -> tuple[list[str], set[str]]:
    """(the `pyctl` modules the agent imports for `cloud`, sorted; the third-party top-level names)."""
    other = [f"pyctl.clouds.{c}" for c in CLOUDS if c != cloud]
    start = sorted(
        f"{AGENT_ROOT}.{p.stem}" if p.name != "__init__.py" else AGENT_ROOT
        for p in (root / "pyctl" / "agent").glob("*.py")
    )
    seen: set[str] = set()
    third_party: set[str] = set()
    queue = list(start)
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        path = _module_file(module, root)
        if path is None:
            continue  # `from pkg import name` where name is an attribute, not a module
        seen.add(module)
        parts = module.split(".")
        queue.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
        for name in _imports(path, module):
            if name.split(".")[0] != "pyctl":
                top = name.split(".")[0]
                if top and top not in sys.stdlib_module_names:
                    third_party.add(top)
                continue
            if any(name == o or name.startswith(o + ".") for o in other):
                continue  # the other cloud's layer: reached only on that cloud
            queue.append(name)
    forbidden = [m for m in sorted(seen) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_MODULES)]
    if forbidden:
        raise PyctlError(
            f"node bundle ({cloud}): the agent imports {', '.join(forbidden)}, which never go on a node"
        )
    extra = third_party - ALLOWED_IMPORTS[cloud]
    if extra:
        raise PyctlError(
            f"node bundle ({cloud}): the agent imports {', '.join(sorted(extra))}, which the node lock does not "
            "ship; add it to pyctl.node_bundle.DEPENDENCIES / ALLOWED_IMPORTS and re-run scripts/lock_node_deps.py"
        )
    return sorted(seen), third_party


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def agent_wheel(cloud: Cloud, root: Path = REPO_ROOT) -> tuple[str, bytes]:
    """(file name, bytes) of the agent wheel: a pure function of the agent's sources and `cloud`."""
    modules, _ = agent_modules(cloud, root)
    files: dict[str, bytes] = {}
    for module in modules:
        path = _module_file(module, root)
        assert path is not None
        files[path.relative_to(root).as_posix()] = path.read_bytes()
    dist = NODE_DISTRIBUTION.replace("-", "_")
    info = f"{dist}-{__version__}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {NODE_DISTRIBUTION}",
        f"Version: {__version__}",
        f"Summary: pyctl-agent, the GPU node agent of pyctl ({cloud})",
        "License: Apache-2.0",
        f"Requires-Python: {REQUIRES_PYTHON}",
        *(f"Requires-Dist: {req}" for req in DEPENDENCIES[cloud]),
    ]
    files[f"{info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: pyctl.node_bundle\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{info}/entry_points.txt"] = (
        "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(ENTRY_POINTS.items()))
    ).encode()
    files[f"{info}/top_level.txt"] = b"pyctl\n"
    record = [f"{name},{_record_hash(data)},{len(data)}" for name, data in sorted(files.items())]
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    # The dist-info goes last, as the wheel spec recommends (RECORD last of all).
    ordered = sorted(files.items(), key=lambda e: (e[0].startswith(info), e[0].endswith("/RECORD"), e[0]))
    return f"{dist}-{__version__}-py3-none-any.whl", zip_bytes(list(ordered))


# --- the bundle ---------------------------------------------------------------------------------------


def _requirements(agent_sha: str, locked: Iterable[LockedWheel]) -> bytes:
    hashes: dict[tuple[str, str], list[str]] = {}
    for wheel in locked:
        hashes.setdefault((wheel.name, wheel.version), []).append(wheel.sha256)
    lines = [f"{NODE_DISTRIBUTION}=={__version__} --hash=sha256:{agent_sha}"]
    lines += [
        f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in sorted(hs))
        for (name, version), hs in sorted(hashes.items())
    ]
    return ("\n".join(lines) + "\n").encode()


# (cloud, agent wheel sha256, lock sha256) -> bundle bytes: a render builds each bundle once per process.
_BUILT: dict[tuple[str, str, str], bytes] = {}


def bundle_bytes(
    cloud: Cloud, cache: Path | None = None, root: Path = REPO_ROOT, offline: bool = False
) -> bytes:
    """The bundle's bytes: the agent wheel, the locked dependency wheels, requirements.txt, BUNDLE.json."""
    if cloud not in CLOUDS:
        raise PyctlError(f"node bundle: unknown cloud {cloud!r} (known: {', '.join(CLOUDS)})")
    locked = load_lock(cloud)
    wheel_paths = ensure_wheels(cloud, cache, offline=offline)  # verifies every cached wheel's hash
    agent_name, agent_data = agent_wheel(cloud, root)
    agent_sha = hashlib.sha256(agent_data).hexdigest()
    memo = (cloud, agent_sha, hashlib.sha256(lock_path(cloud).read_bytes()).hexdigest())
    if memo in _BUILT:
        return _BUILT[memo]
    entries: dict[str, bytes] = {f"wheels/{agent_name}": agent_data}
    for path, wheel in zip(wheel_paths, locked, strict=True):
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != wheel.sha256:  # changed since ensure_wheels checked it
            raise PyctlError(f"node bundle: {path}: sha256 differs from the lock")
        entries[f"wheels/{wheel.filename}"] = data
    entries["requirements.txt"] = _requirements(agent_sha, locked)
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "distribution": NODE_DISTRIBUTION,
        "version": __version__,
        "cloud": cloud,
        "requires_python": REQUIRES_PYTHON,
        "wheels": sorted(name.removeprefix("wheels/") for name in entries if name.startswith("wheels/")),
    }
    entries["BUNDLE.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    data = tar_gz_bytes(entries)
    if len(_BUILT) >= 2:  # tens of MB each: keep the newest few
        _BUILT.pop(next(iter(_BUILT)))
    _BUILT[memo] = data
    return data


def tar_gz_bytes(entries: dict[str, bytes]) -> bytes:
    """A gzip'd tar of `entries`: sorted, mtime 0, uid/gid 0, mode 0644; a pure function of its input."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in sorted(entries.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = _TAR_MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=_GZIP_LEVEL) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def build_bundle(
    cloud: Cloud,
    out_dir: Path,
    key_prefix: str = "",
    cache: Path | None = None,
    offline: bool = False,
) -> BundleInfo:
    """Write `<out_dir>/agent-<cloud>.tar.gz` (an identical existing file is left untouched)."""
    data = bundle_bytes(cloud, cache, offline=offline)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / bundle_filename(cloud)
    if not path.is_file() or path.read_bytes() != data:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    sha = hashlib.sha256(data).hexdigest()
    return BundleInfo(path=path, sha256=sha, key=bundle_key(sha, key_prefix))


def bundle_filename(cloud: Cloud) -> str:
    return f"agent-{cloud}.tar.gz"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m pyctl.node_bundle prefetch [CLOUD...]` | `build CLOUD OUT_DIR`: what `make install` runs."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["prefetch"]:
            for cloud in args[1:] or list(CLOUDS):
                paths = ensure_wheels(_cloud(cloud))
                print(f"{cloud}: {len(paths)} wheels in {wheel_cache()}")
            return 0
        if args[:1] == ["build"] and len(args) == 3:
            info = build_bundle(_cloud(args[1]), Path(args[2]))
            print(f"{info.path} sha256={info.sha256} key={info.key}")
            return 0
    except PyctlError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(
        "usage: python -m pyctl.node_bundle prefetch [aws|gcp ...] | build aws|gcp OUT_DIR", file=sys.stderr
    )
    return 2


def _cloud(value: str) -> Cloud:
    if value == "aws":
        return "aws"
    if value == "gcp":
        return "gcp"
    raise PyctlError(f"unknown cloud {value!r} (known: {', '.join(CLOUDS)})")


if __name__ == "__main__":
    sys.exit(main())
