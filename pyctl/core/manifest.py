"""File manifests: which files make up a stored artefact, their sizes and sha256 digests.

Shared by the model cache and by checkpoints. A manifest is written LAST, after every file it lists is
stored, so its presence means "complete". Everything here is pure (hashlib, pathlib, json): the object
store I/O lives in `pyctl/clouds/<cloud>`.

JSON layout (deterministic: sorted keys, files sorted by path, two-space indent, trailing newline):

    {"format": 1, "files": [{"path": "a/b.safetensors", "sha256": "…", "size": 123}, …], <attributes>}

`attributes` are the caller's own top-level keys (model name, version, checkpoint step, …).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any

from pyctl.errors import PyctlError

FORMAT_VERSION = 1
# Read size for hashing: large enough to keep hashlib busy, small enough to keep memory flat.
HASH_CHUNK_SIZE = 8 * 1024 * 1024
_RESERVED_KEYS = frozenset({"format", "files"})
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(PyctlError):
    """A manifest that cannot be trusted: malformed JSON, an unsafe path, a bad digest."""


def check_relative_path(path: str) -> str:
    """Return `path` if it is a safe relative POSIX path inside a directory, else raise ManifestError.

    Refused: empty, absolute (`/x`, `C:/x`), backslashes, `.`/`..` segments, empty segments (`a//b`).
    A manifest comes from an object store; a hostile one must not write outside the target directory.
    """
    if not path:
        raise ManifestError("manifest path is empty")
    if "\\" in path or "\x00" in path:
        raise ManifestError(f"manifest path {path!r} contains a backslash or NUL")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise ManifestError(f"manifest path {path!r} is absolute")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ManifestError(f"manifest path {path!r} has an empty, '.' or '..' segment")
    return path


@dataclass(frozen=True)
class FileEntry:
    """One file of a manifest: its path relative to the artefact root, size in bytes, sha256 hex."""

    path: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        check_relative_path(self.path)
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ManifestError(f"manifest entry {self.path!r}: size must be a non-negative integer")
        if not isinstance(self.sha256, str) or not _SHA256_HEX.match(self.sha256):
            raise ManifestError(f"manifest entry {self.path!r}: sha256 must be 64 lowercase hex digits")

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, raw: Any) -> FileEntry:
        if not isinstance(raw, Mapping):
            raise ManifestError(f"manifest file entry must be an object, got {type(raw).__name__}")
        missing = {"path", "size", "sha256"} - set(raw)
        if missing:
            raise ManifestError(f"manifest file entry {raw.get('path')!r} lacks {', '.join(sorted(missing))}")
        if not isinstance(raw["path"], str):
            raise ManifestError("manifest file entry: path must be a string")
        return cls(path=raw["path"], size=raw["size"], sha256=raw["sha256"])

    def local_path(self, root: Path) -> Path:
        """Where this entry lives under `root` (the path is already known to be safe)."""
        return root.joinpath(*PurePosixPath(self.path).parts)


@dataclass(frozen=True)
class Manifest:
    """The files of an artefact, sorted by path, plus caller-defined top-level attributes."""

    files: tuple[FileEntry, ...]
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.files, key=lambda e: e.path))
        paths = [e.path for e in ordered]
        duplicates = sorted({p for p in paths if paths.count(p) > 1})
        if duplicates:
            raise ManifestError(f"manifest lists {duplicates[0]!r} more than once")
        reserved = _RESERVED_KEYS & set(self.attributes)
        if reserved:
            raise ManifestError(f"manifest attribute {sorted(reserved)[0]!r} is reserved")
        object.__setattr__(self, "files", ordered)
        object.__setattr__(self, "attributes", dict(self.attributes))

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.files)

    def entry(self, path: str) -> FileEntry | None:
        return next((e for e in self.files if e.path == path), None)

    def to_json(self) -> str:
        document: dict[str, Any] = dict(self.attributes)
        document["format"] = FORMAT_VERSION
        document["files"] = [e.to_dict() for e in self.files]
        return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            document = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"manifest is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise ManifestError("manifest must be a JSON object")
        if document.get("format") != FORMAT_VERSION:
            raise ManifestError(f"manifest format {document.get('format')!r} is not {FORMAT_VERSION}")
        raw_files = document.get("files")
        if not isinstance(raw_files, list):
            raise ManifestError("manifest 'files' must be a list")
        attributes = {k: v for k, v in document.items() if k not in _RESERVED_KEYS}
        return cls(files=tuple(FileEntry.from_dict(r) for r in raw_files), attributes=attributes)


def sha256_file(path: Path, chunk_size: int = HASH_CHUNK_SIZE) -> str:
    """The sha256 hex digest of a file, read in chunks (memory stays at one chunk)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(root: Path, *, skip: Callable[[str], bool] | None = None) -> list[str]:
    """Relative POSIX paths of the regular files under `root`, sorted; `skip(relpath)` drops some."""
    if not root.is_dir():
        raise ManifestError(f"{root} is not a directory")
    found = []
    for path in root.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        if skip is not None and skip(rel):
            continue
        found.append(check_relative_path(rel))
    return sorted(found)


def build_manifest(
    root: Path,
    *,
    attributes: Mapping[str, Any] | None = None,
    skip: Callable[[str], bool] | None = None,
    paths: Iterable[str] | None = None,
) -> Manifest:
    """Hash every file under `root` (or just `paths`) into a Manifest; symlinks are not followed."""
    rels = sorted(paths) if paths is not None else list_files(root, skip=skip)
    entries = []
    for rel in rels:
        local = root.joinpath(*PurePosixPath(check_relative_path(rel)).parts)
        entries.append(FileEntry(path=rel, size=local.stat().st_size, sha256=sha256_file(local)))
    return Manifest(files=tuple(entries), attributes=attributes or {})


class FileState(Enum):
    """What a local file is, compared with its manifest entry."""

    MISSING = "missing"
    SIZE_MISMATCH = "size mismatch"
    DIGEST_MISMATCH = "sha256 mismatch"
    VERIFIED = "verified"


def verify_file(root: Path, entry: FileEntry, chunk_size: int = HASH_CHUNK_SIZE) -> FileState:
    """Compare the local copy of `entry` under `root` with the manifest: size first (cheap), then sha256."""
    local = entry.local_path(root)
    if not local.is_file():
        return FileState.MISSING
    if local.stat().st_size != entry.size:
        return FileState.SIZE_MISMATCH
    if sha256_file(local, chunk_size) != entry.sha256:
        return FileState.DIGEST_MISMATCH
    return FileState.VERIFIED
