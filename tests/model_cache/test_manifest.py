"""The generic file manifest: paths, JSON round trip, building from a directory, verifying local files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pyctl.core.manifest import (
    FileEntry,
    FileState,
    Manifest,
    ManifestError,
    build_manifest,
    check_relative_path,
    sha256_file,
    verify_file,
)

DIGEST = hashlib.sha256(b"hello").hexdigest()


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "C:/x", "a/../../b", "..", "./a", "a//b", "a/", "a\\b", "a/./b"],
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(ManifestError):
        check_relative_path(path)


@pytest.mark.parametrize("path", ["config.json", "a/b/c.safetensors", "..hidden", "a/..b"])
def test_safe_paths_pass(path: str) -> None:
    assert check_relative_path(path) == path


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ({"path": "a", "size": -1, "sha256": DIGEST}, "size"),
        ({"path": "a", "size": True, "sha256": DIGEST}, "size"),
        ({"path": "a", "size": 1, "sha256": DIGEST.upper()}, "sha256"),
        ({"path": "a", "size": 1}, "lacks sha256"),
        ({"path": "../a", "size": 1, "sha256": DIGEST}, "segment"),
        (["a"], "object"),
    ],
)
def test_bad_entries_are_refused(raw: object, complaint: str) -> None:
    with pytest.raises(ManifestError, match=complaint):
        FileEntry.from_dict(raw)


def test_json_is_deterministic_and_round_trips() -> None:
    files = (FileEntry("b.json", 5, DIGEST), FileEntry("a/w.safetensors", 5, DIGEST))
    one = Manifest(files=files, attributes={"name": "m", "version": "v1"})
    two = Manifest(files=tuple(reversed(files)), attributes={"version": "v1", "name": "m"})
    assert one.to_json() == two.to_json()
    assert [e.path for e in one.files] == ["a/w.safetensors", "b.json"]
    back = Manifest.from_json(one.to_json())
    assert back == one
    assert back.attributes == {"name": "m", "version": "v1"}
    assert json.loads(one.to_json())["format"] == 1


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"format": 2, "files": []}', "format 2"),
        ('{"format": 1, "files": {}}', "'files' must be a list"),
        (
            json.dumps({"format": 1, "files": [{"path": "a", "size": 1, "sha256": DIGEST}] * 2}),
            "more than once",
        ),
    ],
)
def test_bad_documents_are_refused(text: str, complaint: str) -> None:
    with pytest.raises(ManifestError, match=complaint):
        Manifest.from_json(text)


def test_reserved_attribute_is_refused() -> None:
    with pytest.raises(ManifestError, match="reserved"):
        Manifest(files=(), attributes={"files": []})


def test_build_manifest_hashes_every_regular_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "config.json").write_bytes(b"hello")
    (tmp_path / "link").symlink_to(tmp_path / "config.json")
    (tmp_path / "x.tmp").write_bytes(b"")
    manifest = build_manifest(tmp_path, attributes={"name": "m"}, skip=lambda rel: rel.endswith(".tmp"))
    assert [(e.path, e.size) for e in manifest.files] == [("config.json", 5), ("sub/w.safetensors", 1000)]
    assert manifest.entry("config.json") == FileEntry("config.json", 5, DIGEST)
    assert manifest.total_size == 1005


def test_sha256_file_is_independent_of_chunk_size(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    (tmp_path / "f").write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert {sha256_file(tmp_path / "f", size) for size in (1, 7, 4096, 10**7)} == {expected}


def test_verify_file_states(tmp_path: Path) -> None:
    entry = FileEntry("d/f", 5, DIGEST)
    assert verify_file(tmp_path, entry) is FileState.MISSING
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"hell")
    assert verify_file(tmp_path, entry) is FileState.SIZE_MISMATCH
    (tmp_path / "d" / "f").write_bytes(b"jello")
    assert verify_file(tmp_path, entry) is FileState.DIGEST_MISMATCH
    (tmp_path / "d" / "f").write_bytes(b"hello")
    assert verify_file(tmp_path, entry) is FileState.VERIFIED
