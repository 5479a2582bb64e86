"""Model-cache rules: which files a model may hold, where it lives in the bucket, how it is split for
ranged downloads. Pure: the object-store I/O is in `pyctl/clouds/<cloud>/storage.py`.

Bucket layout (PREFIX is optional):

    [PREFIX/]models/NAME/VERSION/<files…>
    [PREFIX/]models/NAME/VERSION/manifest.json     written last: its presence means "complete"
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from pyctl.core.manifest import Manifest
from pyctl.errors import PyctlError

# What `model push` uploads without --allow-pickle: an ALLOW list of formats that load without running code
# (weights as safetensors or GGUF, text configs, tokenizer files). Anything else is refused, because a
# format a loader may unpickle (torch.load, numpy allow_pickle, joblib) runs arbitrary code on the node.
SAFE_SUFFIXES: tuple[str, ...] = (
    ".safetensors",  # weights: a JSON header and raw tensors
    ".gguf",  # llama.cpp weights: typed key/values and tensors
    ".json",  # config.json, tokenizer.json, vocab.json, *.safetensors.index.json
    ".txt",  # merges.txt, vocab.txt, LICENSE.txt
    ".md",  # README.md, model card
    ".model",  # sentencepiece (tokenizer.model, spiece.model): a protobuf
    ".tiktoken",  # tiktoken BPE ranks: base64 text
    ".jinja",  # chat templates
    ".yaml",
    ".yml",
)
# Files without a suffix that model repositories carry (text).
SAFE_NAMES: frozenset[str] = frozenset({"LICENSE", "NOTICE", "COPYING", "README", "USE_POLICY"})
# Formats known to be pickle-capable (named as such in the refusal): torch.load, pickle, joblib, numpy.
PICKLE_SUFFIXES: tuple[str, ...] = (
    ".bin",
    ".pt",
    ".pth",
    ".pth.tar",
    ".pt2",
    ".pkl",
    ".pickle",
    ".ckpt",
    ".joblib",
    ".npy",
    ".npz",
)
MANIFEST_NAME = "manifest.json"
MIB = 1024 * 1024

# Fetch tuning, measured with benchmarks/model_fetch.py (see benchmarks/RESULTS.md): every ranged GET
# costs a request's latency (and, on moto, a read of the whole object), so parts are as large as keeps
# every connection busy, within these bounds (the upper one bounds a retry and the tail of the fetch).
DEFAULT_CONCURRENCY = 16
MIN_AUTO_PART_SIZE = 8 * MIB
MAX_AUTO_PART_SIZE = 256 * MIB
# Multipart upload chunk (s3transfer) before the 10,000-part adjustment.
UPLOAD_PART_SIZE = 32 * MIB
# S3 multipart rules: parts of at least 5 MiB (except the last), at most 10,000 parts.
S3_MIN_PART_SIZE = 5 * MIB
S3_MAX_PARTS = 10_000

# The same rules as env.yaml's model_cache.models[].name / .version (pyctl/spec.py): a key segment.
_SEGMENT_LIMITS = {"name": 128, "version": 64}


def _check_segment(kind: str, value: str) -> str:
    limit = _SEGMENT_LIMITS[kind]
    if not re.fullmatch(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{limit - 1}}}", value) or ".." in value:
        raise PyctlError(
            f"model {kind} {value!r} is invalid: up to {limit} letters, digits, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return value


def check_model_name(name: str) -> str:
    """A model name: up to 128 of [A-Za-z0-9._-], starting with a letter or digit (`llama-3-8b`)."""
    return _check_segment("name", name)


def check_version(version: str) -> str:
    """A version: up to 64 of [A-Za-z0-9._-], starting with a letter or digit (`2024-07-18`)."""
    return _check_segment("version", version)


def default_version(now: datetime) -> str:
    """A version named after the push time in UTC, e.g. `20261122T071400Z` (sorts by time)."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def is_safe_format(path: str) -> bool:
    """Whether `path` is on the allow list (SAFE_SUFFIXES, case-insensitive, or a SAFE_NAMES file)."""
    base = path.rsplit("/", 1)[-1]
    return base.lower().endswith(SAFE_SUFFIXES) or base in SAFE_NAMES


def pickle_files(paths: Iterable[str]) -> list[str]:
    """The paths whose suffix is a known pickle-capable format, sorted."""
    return sorted(p for p in paths if p.lower().endswith(PICKLE_SUFFIXES))


def unsafe_files(paths: Iterable[str]) -> list[str]:
    """The paths not on the allow list (pickle-capable or unknown formats), sorted."""
    return sorted(p for p in paths if not is_safe_format(p))


def _suffix(path: str) -> str:
    """The format suffix a refusal names: the longest known one (`.pth.tar`), else the last."""
    lower = path.lower()
    known = [s for s in PICKLE_SUFFIXES if lower.endswith(s)]
    return max(known, key=len) if known else PurePosixPath(lower).suffix


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def model_prefix(prefix: str, name: str) -> str:
    """`[PREFIX/]models/NAME/` (with the trailing slash)."""
    return _join(prefix, "models", check_model_name(name)) + "/"


def version_prefix(prefix: str, name: str, version: str) -> str:
    """`[PREFIX/]models/NAME/VERSION/` (with the trailing slash)."""
    return model_prefix(prefix, name) + check_version(version) + "/"


def manifest_key(prefix: str, name: str, version: str) -> str:
    return version_prefix(prefix, name, version) + MANIFEST_NAME


def object_key(prefix: str, name: str, version: str, path: str) -> str:
    return version_prefix(prefix, name, version) + path


def version_of_manifest_key(key: str, prefix: str, name: str) -> str | None:
    """`VERSION` if `key` is exactly `[PREFIX/]models/NAME/VERSION/manifest.json`, else None."""
    head = model_prefix(prefix, name)
    if not key.startswith(head) or not key.endswith("/" + MANIFEST_NAME):
        return None
    version = key[len(head) : -len(MANIFEST_NAME) - 1]
    try:
        return check_version(version)
    except PyctlError:
        return None


@dataclass(frozen=True)
class StoredVersion:
    """A complete version in the bucket: its name and when its manifest was written."""

    version: str
    written: datetime


def latest_version(versions: Sequence[StoredVersion]) -> str | None:
    """The version whose manifest was written last (ties: the greater name); None if there is none."""
    if not versions:
        return None
    return max(versions, key=lambda v: (v.written, v.version)).version


def model_manifest(manifest: Manifest, name: str, version: str) -> Manifest:
    """Check that a downloaded manifest belongs to NAME/VERSION; the bucket path alone is not trusted."""
    found = (manifest.attributes.get("name"), manifest.attributes.get("version"))
    if found != (name, version):
        raise PyctlError(
            f"manifest of model {name} version {version} names {found[0]!r} version {found[1]!r}: "
            "the bucket holds a mismatched manifest"
        )
    return manifest


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range of one object, as an HTTP `Range` header expresses it."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def header(self) -> str:
        return f"bytes={self.start}-{self.end}"


def plan_ranges(size: int, part_size: int) -> list[ByteRange]:
    """Split an object of `size` bytes into ranges of `part_size` (the last may be shorter).

    An empty object has no ranges (it is created locally without a request).
    """
    if part_size <= 0:
        raise ValueError("part_size must be positive")
    return [ByteRange(start, min(start + part_size, size) - 1) for start in range(0, size, part_size)]


def auto_part_size(total_bytes: int, concurrency: int) -> int:
    """The ranged-GET size for `total_bytes` over `concurrency` connections: one part per connection,
    in whole MiB, within [MIN_AUTO_PART_SIZE, MAX_AUTO_PART_SIZE]."""
    per_connection = math.ceil(total_bytes / max(concurrency, 1) / MIB) * MIB
    return min(MAX_AUTO_PART_SIZE, max(MIN_AUTO_PART_SIZE, per_connection))


def upload_part_size(size: int, preferred: int = UPLOAD_PART_SIZE) -> int:
    """The multipart chunk size for an upload of `size` bytes: `preferred`, grown (in MiB) to stay within
    S3's 10,000-part limit, and never under S3's 5 MiB minimum."""
    needed = math.ceil(size / S3_MAX_PARTS) if size else 0
    chunk = max(preferred, needed, S3_MIN_PART_SIZE)
    return math.ceil(chunk / MIB) * MIB


@dataclass(frozen=True)
class BucketRef:
    """Where a model cache lives: cloud ("aws" or "gcp"), bucket name, key prefix."""

    cloud: str
    bucket: str
    prefix: str

    def url(self) -> str:
        scheme = "s3" if self.cloud == "aws" else "gs"
        return f"{scheme}://{self.bucket}/{self.prefix}".rstrip("/")


def parse_bucket(bucket: str, prefix: str = "", cloud: str | None = None) -> BucketRef:
    """`name`, `s3://name[/prefix]` or `gs://name[/prefix]` (+ --prefix, --cloud) -> BucketRef.

    A bare name is S3 unless `cloud` says gcp; a URL scheme and a contradicting `cloud` is an error.
    """
    scheme_cloud = {"s3://": "aws", "gs://": "gcp"}
    found = next((c for s, c in scheme_cloud.items() if bucket.startswith(s)), None)
    if found is not None:
        if cloud is not None and cloud != found:
            raise PyctlError(f"--bucket {bucket} is a {found} URL but --cloud is {cloud}")
        name, _, url_prefix = bucket[5:].partition("/")
    else:
        name, url_prefix = bucket, ""
    if not name or "/" in name:
        raise PyctlError(f"--bucket {bucket!r} is not a bucket name or s3:// / gs:// URL")
    joined = "/".join(p.strip("/") for p in (url_prefix, prefix) if p.strip("/"))
    return BucketRef(cloud=found or cloud or "aws", bucket=name, prefix=joined)


def check_model_files(paths: Sequence[str], *, allow_pickle: bool) -> list[str]:
    """Refuse what a model push must not upload; return the warnings for what it may.

    Only the allow list (SAFE_SUFFIXES, SAFE_NAMES) goes up by default; every other file (a pickle-capable
    format, or one this list does not know) is refused unless `allow_pickle`, then warned about. A root
    `manifest.json` would collide with the cache's own manifest key.
    """
    if not paths:
        raise PyctlError("model directory holds no files to push")
    if MANIFEST_NAME in paths:
        raise PyctlError(f"{MANIFEST_NAME} at the model root is reserved for the cache manifest: rename it")
    refused = unsafe_files(paths)
    pickled = set(pickle_files(refused))
    if refused and not allow_pickle:
        safe_weights = any(p.lower().endswith((".safetensors", ".gguf")) for p in paths)
        suffixes = " ".join(f"--exclude '*{s}'" for s in sorted({_suffix(p) for p in refused} - {""}))
        fix = (
            f"the safetensors are there too: leave the others out with {suffixes}"
            if safe_weights and suffixes and all(_suffix(p) for p in refused)
            else "convert to safetensors, or pass --allow-pickle"
        )
        kinds = []
        if pickled:
            kinds.append(
                f"pickle-capable file(s) {', '.join(sorted(pickled))}: loading them runs arbitrary code"
            )
        others = [p for p in refused if p not in pickled]
        if others:
            kinds.append(f"file(s) of a format not on the safe list {', '.join(others)}")
        raise PyctlError(f"refusing {'; and '.join(kinds)}; nothing was uploaded; {fix}")
    return [
        f"{p} is a pickle-capable format: loading it runs arbitrary code"
        if p in pickled
        else f"{p} is not a known-safe format (uploaded because of --allow-pickle)"
        for p in refused
    ]
