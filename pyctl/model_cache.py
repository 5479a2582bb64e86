"""The model-cache protocol, the same on every cloud: push (files, then the manifest last) and fetch
(resolve the version, skip what is already verified, download into temporary files, verify sha256,
rename, refetch a corrupted file once, then report).

The object-store I/O is a `pyctl.core.object_store.ObjectStore` (S3 or GCS, from
`pyctl.clouds.store.open_store`); the rules (names, key layout, the format allow list) are in `pyctl/core/models.py`.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pyctl.core.manifest import (
    FileEntry,
    FileState,
    Manifest,
    ManifestError,
    build_manifest,
    list_files,
    sha256_file,
    verify_file,
)
from pyctl.core.models import (
    StoredVersion,
    check_model_files,
    check_model_name,
    check_version,
    default_version,
    latest_version,
    manifest_key,
    model_manifest,
    model_prefix,
    object_key,
    version_of_manifest_key,
)
from pyctl.core.object_store import ObjectStore, Transfer, TransferCancelled
from pyctl.errors import PyctlError
from pyctl.output import human_bytes

# Written into the target directory after a complete, verified fetch (a copy of the bucket's manifest).
LOCAL_MANIFEST_NAME = ".pyctl-model.json"
PART_SUFFIX = ".pyctl-part"
# Exit code of a fetch that reached the bucket but could not produce verified files.
EXIT_INTEGRITY = 1
# Exit code after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
# Seconds an interrupted transfer gives its workers to stop before the temporary files are removed.
CANCEL_GRACE_SECONDS = 0.5
# Threads that re-hash the files already present (sha256 releases the GIL: one per core is enough).
VERIFY_THREADS = max(1, min(8, os.cpu_count() or 1))


class FetchProgress(Protocol):
    """What a fetch reports; implementations must be thread-safe (stores call from worker threads)."""

    def begin(
        self, name: str, version: str, todo: Sequence[FileEntry], skipped: Sequence[FileEntry]
    ) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def file_done(self, entry: FileEntry, outcome: str) -> None: ...

    def end(self) -> None: ...


@dataclass
class FetchResult:
    name: str
    version: str
    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refetched: list[str] = field(default_factory=list)
    bytes_fetched: int = 0
    seconds: float = 0.0


def stored_versions(store: ObjectStore, name: str) -> list[StoredVersion]:
    """Every complete version of `name` (those with a manifest), with when its manifest was written."""
    found = []
    for obj in store.list(model_prefix(store.prefix, name)):
        version = version_of_manifest_key(obj.key, store.prefix, name)
        if version is not None:
            found.append(StoredVersion(version, obj.modified))
    return found


def read_manifest(store: ObjectStore, name: str, version: str) -> bytes | None:
    """The manifest document of NAME/VERSION, or None if that version has none."""
    return store.get(manifest_key(store.prefix, name, version))


def resolve_version(store: ObjectStore, name: str, version: str | None) -> str:
    """`version` if given, else the latest complete one; a missing model is a one-line error."""
    check_model_name(name)
    if version is not None:
        return check_version(version)
    latest = latest_version(stored_versions(store, name))
    if latest is None:
        raise PyctlError(
            f"model {name!r} not found: no complete version under {store.url(model_prefix(store.prefix, name))}"
        )
    return latest


def load_manifest(store: ObjectStore, name: str, version: str) -> Manifest:
    raw = read_manifest(store, name, version)
    if raw is None:
        raise PyctlError(
            f"model {name!r} version {version!r} not found: no manifest at {store.url(manifest_key(store.prefix, name, version))}"
        )
    try:
        return model_manifest(Manifest.from_json(raw), name, version)
    except ManifestError as exc:
        raise PyctlError(f"model {name!r} version {version!r}: {exc}") from None


def part_path(target: Path) -> Path:
    """The temporary file a download writes before its rename (same directory: the rename is atomic)."""
    return target.with_name(f".{target.name}{PART_SUFFIX}")


def fetch_model(
    store: ObjectStore, name: str, version: str | None, dest: Path, progress: FetchProgress
) -> FetchResult:
    """Fetch NAME (VERSION or the latest) into `dest`; resumable: verified files are kept."""
    started = time.monotonic()
    version = resolve_version(store, name, version)
    manifest = load_manifest(store, name, version)
    dest.mkdir(parents=True, exist_ok=True)
    # The completion marker goes first and comes back last: a half-done fetch never looks complete.
    (dest / LOCAL_MANIFEST_NAME).unlink(missing_ok=True)
    result = FetchResult(name=name, version=version)
    todo: list[FileEntry] = []
    skipped: list[FileEntry] = []
    # Files already present are proven by size and sha256, on every core (a resume of 140 GB on one
    # core would hash for minutes).
    with ThreadPoolExecutor(max_workers=VERIFY_THREADS, thread_name_prefix="verify") as pool:
        states = list(pool.map(lambda e: verify_file(dest, e), manifest.files))
    for entry, state in zip(manifest.files, states, strict=True):
        (skipped if state is FileState.VERIFIED else todo).append(entry)
    result.skipped = [e.path for e in skipped]
    progress.begin(name, version, todo, skipped)

    failures: dict[str, str] = {}
    lock = threading.Lock()
    last_attempt = False
    cancelled = threading.Event()

    def advance(nbytes: int) -> None:
        if cancelled.is_set():
            raise TransferCancelled("interrupted")
        progress.advance(nbytes)

    def finish(transfer: Transfer, error: BaseException | None, digest: str | None) -> None:
        entry = transfer.entry
        if cancelled.is_set():
            if error is not None:
                transfer.local.unlink(missing_ok=True)
            return
        try:
            problem = _install(transfer, dest, digest) if error is None else f"download failed: {error}"
        except OSError as exc:
            problem = f"cannot install the downloaded file: {exc}"
        with lock:
            if problem is None:
                result.fetched.append(entry.path)
                result.bytes_fetched += entry.size
                failures.pop(entry.path, None)
            else:
                failures[entry.path] = problem
        if problem is None:
            progress.file_done(entry, "verified")
        else:
            progress.file_done(entry, f"{problem}; {'giving up' if last_attempt else 'refetching'}")

    try:
        pending = todo
        for attempt in (1, 2):
            last_attempt = attempt == 2
            if attempt == 2:
                pending = [e for e in todo if e.path in failures]
                result.refetched = [e.path for e in pending]
            if not pending:
                break
            transfers = [_fetch_transfer(store, name, version, dest, e) for e in pending]
            for transfer in transfers:
                transfer.local.parent.mkdir(parents=True, exist_ok=True)
            try:
                interruptible(lambda t=transfers: store.download(t, advance, finish))  # type: ignore[misc]
            except KeyboardInterrupt:
                # Stop the transfers (their next chunk raises), then remove every temporary file: under
                # a real name there is only what was verified, and no marker says the fetch is complete.
                cancelled.set()
                time.sleep(CANCEL_GRACE_SECONDS)
                for transfer in transfers:
                    transfer.local.unlink(missing_ok=True)
                raise
            reported = set(result.fetched) | set(failures)
            for entry in pending:
                if entry.path not in reported:  # a store bug must not pass for a complete fetch
                    failures[entry.path] = "download never reported"
    finally:
        progress.end()
    result.seconds = time.monotonic() - started
    if failures:
        details = "; ".join(f"{path}: {why}" for path, why in sorted(failures.items()))
        raise PyctlError(
            f"model {name!r} version {version!r}: {len(failures)} file(s) failed verification: {details}",
            exit_code=EXIT_INTEGRITY,
        )
    for entry in manifest.files:  # what an earlier, killed fetch left behind
        part_path(entry.local_path(dest)).unlink(missing_ok=True)
    (dest / LOCAL_MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return result


def interruptible(work: Callable[[], None]) -> None:
    """Run `work` on a daemon thread and wait for it; Ctrl-C (KeyboardInterrupt) reaches the caller at
    once instead of after the SDK's thread pools have drained. The caller must then stop the work (and a
    CLI should leave with `os._exit`: the pools' threads are joined at a normal exit)."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the waiting thread
            outcome.append(exc)

    thread = threading.Thread(target=run, name="transfer", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)  # a timed wait: SIGINT's handler runs between waits
    if outcome:
        raise outcome[0]


def _fetch_transfer(store: ObjectStore, name: str, version: str, dest: Path, entry: FileEntry) -> Transfer:
    key = object_key(store.prefix, name, version, entry.path)
    return Transfer(entry=entry, key=key, local=part_path(entry.local_path(dest)))


def _install(transfer: Transfer, dest: Path, digest: str | None) -> str | None:
    """Verify a downloaded temporary file (`digest`: its sha256 if already known) and rename it into
    place; the problem if it is not right."""
    entry, temp = transfer.entry, transfer.local
    size = temp.stat().st_size if temp.exists() else -1
    if size != entry.size:
        temp.unlink(missing_ok=True)
        return f"size mismatch (manifest {entry.size}, downloaded {size})"
    digest = digest or sha256_file(temp)
    if digest != entry.sha256:
        temp.unlink(missing_ok=True)
        return f"sha256 mismatch (manifest {entry.sha256[:12]}…, downloaded {digest[:12]}…)"
    os.replace(temp, entry.local_path(dest))
    return None


def model_files(source: Path, exclude: Sequence[str] = ()) -> list[str]:
    """The files a push uploads: every regular file under `source` except hidden ones (`.git/`, `.cache/`)
    and those matching an `exclude` glob (matched against the relative path and the file name)."""

    def skip(rel: str) -> bool:
        if any(part.startswith(".") for part in rel.split("/")):
            return True
        return any(
            fnmatch.fnmatchcase(rel, g) or fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], g) for g in exclude
        )

    return list_files(source, skip=skip)


def checked_model_files(
    source: Path, *, exclude: Sequence[str] = (), allow_pickle: bool
) -> tuple[list[str], list[str]]:
    """(files to push, warnings), refusing a directory a push must not upload before anything is opened."""
    paths = model_files(source, exclude)
    return paths, check_model_files(paths, allow_pickle=allow_pickle)


class PushProgress(Protocol):
    """What a push reports while it uploads (called from worker threads: implementations are thread-safe)."""

    def begin(self, name: str, version: str, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def end(self) -> None: ...


def push_model(
    store: ObjectStore,
    source: Path,
    name: str,
    version: str | None,
    *,
    allow_pickle: bool,
    log: Callable[[str], None],
    now: datetime | None = None,
    exclude: Sequence[str] = (),
    progress: PushProgress | None = None,
) -> Manifest:
    """Upload the model in `source` as NAME/VERSION: files in parallel, then the manifest last."""
    check_model_name(name)
    now = now or datetime.now(UTC)
    version = check_version(version) if version else default_version(now)
    paths, warnings = checked_model_files(source, exclude=exclude, allow_pickle=allow_pickle)
    for warning in warnings:
        log(f"warning: {warning}")
    if read_manifest(store, name, version) is not None:
        raise PyctlError(
            f"model {name!r} version {version!r} already exists at {store.url(manifest_key(store.prefix, name, version))}; "
            "versions are immutable: choose another --version"
        )
    log(f"hashing {len(paths)} file(s) in {source}")
    manifest = build_manifest(
        source,
        paths=paths,
        attributes={"name": name, "version": version, "created": now.isoformat()},
    )
    transfers = [
        Transfer(entry=e, key=object_key(store.prefix, name, version, e.path), local=e.local_path(source))
        for e in manifest.files
    ]
    errors: dict[str, str] = {}

    def uploaded(transfer: Transfer, error: BaseException | None) -> None:
        if error is None:
            if progress is not None:
                progress.advance(transfer.entry.size)
            else:
                log(f"uploaded {transfer.entry.path} ({human_bytes(transfer.entry.size)})")
        else:
            errors[transfer.entry.path] = str(error)

    if progress is not None:
        progress.begin(name, version, manifest.total_size)
    try:
        # Ctrl-C: raised here at once; the manifest is never written, so the version does not exist.
        interruptible(lambda: store.upload(transfers, uploaded))
    finally:
        if progress is not None:
            progress.end()
    if errors:
        details = "; ".join(f"{path}: {why}" for path, why in sorted(errors.items()))
        raise PyctlError(
            f"push of model {name!r} version {version!r} failed, no manifest written: {details}", 1
        )
    store.put(
        manifest_key(store.prefix, name, version), manifest.to_json().encode("utf-8"), "application/json"
    )
    log(f"pushed {name} version {version}: {len(manifest.files)} file(s), {human_bytes(manifest.total_size)}")
    return manifest
