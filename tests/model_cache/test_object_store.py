"""The one ObjectStore protocol (pyctl.core.object_store), the same contract on both implementations:
S3Store on the moto server and GcsStore on the GCS fake, through their real SDKs. The model cache and
checkpoints rely on exactly these behaviours."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from pyctl.clouds.store import open_store
from pyctl.core.manifest import FileEntry
from pyctl.core.models import parse_bucket
from pyctl.core.object_store import BucketUnavailable, ObjectStore, SizeMismatch, Transfer

from .conftest import BUCKET

Opener = Callable[[str, str], ObjectStore]


@pytest.fixture(params=["s3", "gs"])
def open_bucket(request: pytest.FixtureRequest) -> Opener:
    """(bucket, prefix) -> the store of that cloud, built by the one factory from a bucket URL."""
    request.getfixturevalue("s3_bucket" if request.param == "s3" else "gcs_fake")
    scheme = request.param
    return lambda bucket, prefix: open_store(parse_bucket(f"{scheme}://{bucket}", prefix), concurrency=4)


def entry(path: str, data: bytes) -> FileEntry:
    return FileEntry(path, len(data), hashlib.sha256(data).hexdigest())


class Recorder:
    """The store's callbacks, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: dict[str, BaseException | None] = {}
        self.calls = 0
        self.bytes = 0

    def finished(self, transfer: Transfer, error: BaseException | None, digest: str | None = None) -> None:
        with self.lock:
            self.calls += 1
            self.done[transfer.entry.path] = error

    def advance(self, nbytes: int) -> None:
        with self.lock:
            self.bytes += nbytes


def test_both_stores_implement_the_protocol(open_bucket: Opener) -> None:
    store = open_bucket(BUCKET, "/team/")
    assert isinstance(store, ObjectStore)
    assert store.prefix == "team"
    assert store.url().endswith(f"://{BUCKET}") and store.url("team/x") == store.url() + "/team/x"
    assert store.errors and all(issubclass(e, BaseException) for e in store.errors)


def test_put_get_list_delete(open_bucket: Opener) -> None:
    store = open_bucket(BUCKET, "team")
    assert store.get("team/nothing-here") is None  # a missing object is None, not an error
    store.put("team/a/MANIFEST.json", b"{}", "application/json")
    store.put("team/a/data", b"12345", "application/octet-stream")
    store.put("team-other/a", b"x", "application/octet-stream")
    assert store.get("team/a/data") == b"12345"
    listed = sorted(store.list("team/a/"))
    assert [(o.key, o.size) for o in listed] == [("team/a/MANIFEST.json", 2), ("team/a/data", 5)]
    assert all(isinstance(o.modified, datetime) for o in listed)
    store.delete(["team/a/MANIFEST.json", "team/a/data"])
    assert store.list("team/") == []
    assert [o.key for o in store.list("team")] == ["team-other/a"]  # a plain key prefix, not a folder


def test_upload_then_ranged_download_round_trip(open_bucket: Opener, tmp_path: Path) -> None:
    store = open_bucket(BUCKET, "")
    files = {"big.bin": os.urandom(3 * 1024 * 1024 + 5), "small.txt": b"hello", "empty": b""}
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    ups = [Transfer(entry(n, d), f"k/{n}", src / n) for n, d in files.items()]
    up = Recorder()
    store.upload(ups, up.finished)
    assert up.done == dict.fromkeys(files) and up.calls == len(files)

    downs = [Transfer(t.entry, t.key, dst / t.entry.path) for t in ups]
    down = Recorder()
    store.download(downs, down.advance, down.finished)
    assert down.done == dict.fromkeys(files) and down.calls == len(files)  # once per transfer
    assert down.bytes == sum(len(d) for d in files.values())
    for name, data in files.items():
        assert (dst / name).read_bytes() == data


def test_a_stored_size_other_than_the_manifest_is_a_size_mismatch(
    open_bucket: Opener, tmp_path: Path
) -> None:
    store = open_bucket(BUCKET, "")
    store.put("k/f", b"0123456789", "application/octet-stream")
    wrong = Transfer(entry("f", b"01234"), "k/f", tmp_path / "f")
    down = Recorder()
    store.download([wrong], down.advance, down.finished)
    assert isinstance(down.done["f"], SizeMismatch)


def test_a_missing_bucket_is_one_clear_error(open_bucket: Opener) -> None:
    store = open_bucket("no-such-bucket", "")
    with pytest.raises(BucketUnavailable, match="no-such-bucket does not exist") as caught:
        store.list("")
    assert isinstance(caught.value.__cause__, store.errors)  # the SDK's error, for the agent's message


def _imports(path: Path) -> set[str]:
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_dependencies_point_one_way() -> None:
    """Clouds implement the core's protocol; the model cache and the core never import a cloud (the
    old circle: model_cache defined the transfer events and imported the cloud stores back)."""
    root = Path(__file__).resolve().parents[2] / "pyctl"
    for module in ("model_cache.py", "core/object_store.py", "core/checkpoint_store.py"):
        assert not any(m.startswith("pyctl.clouds") for m in _imports(root / module)), module
    for module in ("clouds/aws/storage.py", "clouds/gcp/storage.py"):
        imported = _imports(root / module)
        assert "pyctl.model_cache" not in imported and "pyctl.core.object_store" in imported, module
