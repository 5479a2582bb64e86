"""Model-cache rules: names, versions, key layout, pickle detection, range and part-size planning."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pyctl.core.manifest import Manifest
from pyctl.core.models import (
    MIB,
    BucketRef,
    ByteRange,
    StoredVersion,
    auto_part_size,
    check_model_files,
    check_model_name,
    check_version,
    default_version,
    is_safe_format,
    latest_version,
    manifest_key,
    model_manifest,
    object_key,
    parse_bucket,
    pickle_files,
    plan_ranges,
    upload_part_size,
    version_of_manifest_key,
)
from pyctl.errors import PyctlError


@pytest.mark.parametrize("name", ["llama-3-8b", "Llama-3-8B", "m.v2_x", "x" * 128])
def test_valid_names(name: str) -> None:
    assert check_model_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "/abs", "a/b", "../x", "a/..", "-x", "a b", "a..b", ".hidden", "x" * 129, "a\n"]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(PyctlError, match="model name"):
        check_model_name(name)


@pytest.mark.parametrize("version", ["", "a/b", "..", "-1", "x" * 65, "v1\n"])
def test_invalid_versions(version: str) -> None:
    with pytest.raises(PyctlError, match="model version"):
        check_version(version)


def test_default_version_is_utc_timestamp() -> None:
    local = datetime(2026, 11, 22, 9, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert default_version(local) == "20261122T071400Z"


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("", "models/m/v1/manifest.json"), ("team/", "team/models/m/v1/manifest.json")],
)
def test_key_layout(prefix: str, expected: str) -> None:
    assert manifest_key(prefix, "m", "v1") == expected
    assert object_key(prefix, "m", "v1", "a/w.safetensors") == expected.replace(
        "manifest.json", "a/w.safetensors"
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("models/m/v1/manifest.json", "v1"),
        ("models/m/v1/sub/manifest.json", None),  # a file inside a version, not its manifest
        ("models/mm/v1/manifest.json", None),
        ("models/m/manifest.json", None),
        ("models/m/v1/config.json", None),
    ],
)
def test_version_of_manifest_key(key: str, expected: str | None) -> None:
    assert version_of_manifest_key(key, "", "m") == expected


def test_latest_version_is_the_last_written() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    versions = [
        StoredVersion("v10", t),
        StoredVersion("v9", t + timedelta(seconds=5)),
        StoredVersion("v2", t),
    ]
    assert latest_version(versions) == "v9"
    assert latest_version([StoredVersion("a", t), StoredVersion("b", t)]) == "b"
    assert latest_version([]) is None


def test_pickle_files() -> None:
    paths = ["model.safetensors", "pytorch_model.bin", "x/opt.PT", "a.pth", "b.pkl", "c.ckpt", "tok.json"]
    assert pickle_files(paths) == ["a.pth", "b.pkl", "c.ckpt", "pytorch_model.bin", "x/opt.PT"]


def test_model_manifest_must_name_the_requested_model() -> None:
    manifest = Manifest(files=(), attributes={"name": "m", "version": "v1"})
    assert model_manifest(manifest, "m", "v1") is manifest
    with pytest.raises(PyctlError, match="mismatched manifest"):
        model_manifest(manifest, "other", "v1")


@pytest.mark.parametrize(
    ("size", "part", "expected"),
    [
        (0, 4, []),
        (3, 4, [ByteRange(0, 2)]),
        (8, 4, [ByteRange(0, 3), ByteRange(4, 7)]),
        (9, 4, [ByteRange(0, 3), ByteRange(4, 7), ByteRange(8, 8)]),
    ],
)
def test_plan_ranges(size: int, part: int, expected: list[ByteRange]) -> None:
    ranges = plan_ranges(size, part)
    assert ranges == expected
    assert sum(r.length for r in ranges) == size


def test_range_header() -> None:
    assert ByteRange(4, 7).header() == "bytes=4-7"


@pytest.mark.parametrize(
    ("size", "preferred", "expected"),
    [
        (10 * MIB, 32 * MIB, 32 * MIB),
        (10 * MIB, 1 * MIB, 5 * MIB),  # S3 minimum
        (1_000_000 * MIB, 32 * MIB, 100 * MIB),  # 10,000-part limit
        (0, 32 * MIB, 32 * MIB),
    ],
)
def test_upload_part_size(size: int, preferred: int, expected: int) -> None:
    assert upload_part_size(size, preferred) == expected


def test_check_model_files() -> None:
    assert check_model_files(["a.safetensors", "config.json"], allow_pickle=False) == []
    with pytest.raises(
        PyctlError, match=r"refusing pickle-capable file\(s\) pytorch_model.bin: .*--allow-pickle"
    ):
        check_model_files(["pytorch_model.bin", "config.json"], allow_pickle=False)
    assert check_model_files(["pytorch_model.bin"], allow_pickle=True) == [
        "pytorch_model.bin is a pickle-capable format: loading it runs arbitrary code"
    ]
    with pytest.raises(PyctlError, match="reserved"):
        check_model_files(["manifest.json"], allow_pickle=False)
    with pytest.raises(PyctlError, match="no files"):
        check_model_files([], allow_pickle=False)


@pytest.mark.parametrize(
    ("bucket", "prefix", "cloud", "expected"),
    [
        ("cache", "", None, BucketRef("aws", "cache", "")),
        ("cache", "p", "gcp", BucketRef("gcp", "cache", "p")),
        ("s3://cache/team/", "", None, BucketRef("aws", "cache", "team")),
        ("gs://cache/team", "/sub/", None, BucketRef("gcp", "cache", "team/sub")),
        ("gs://cache", "", "gcp", BucketRef("gcp", "cache", "")),
    ],
)
def test_parse_bucket(bucket: str, prefix: str, cloud: str | None, expected: BucketRef) -> None:
    assert parse_bucket(bucket, prefix, cloud) == expected


@pytest.mark.parametrize(("bucket", "cloud"), [("gs://c", "aws"), ("", None), ("s3://", None), ("a/b", None)])
def test_parse_bucket_refuses(bucket: str, cloud: str | None) -> None:
    with pytest.raises(PyctlError, match="--bucket"):
        parse_bucket(bucket, "", cloud)


def test_bucket_url() -> None:
    assert BucketRef("gcp", "c", "p").url() == "gs://c/p"
    assert BucketRef("aws", "c", "").url() == "s3://c"


@pytest.mark.parametrize(
    ("total", "concurrency", "expected"),
    [
        (0, 16, 8 * MIB),  # never under the minimum
        (2 * 1024 * MIB, 16, 128 * MIB),  # one part per connection
        (2 * 1024 * MIB + 1, 16, 129 * MIB),  # rounded up to whole MiB
        (140 * 1024 * MIB, 16, 256 * MIB),  # capped: bounded retries and tail
        (100 * MIB, 0, 100 * MIB),
    ],
)
def test_auto_part_size(total: int, concurrency: int, expected: int) -> None:
    assert auto_part_size(total, concurrency) == expected


# A real Hugging Face / llama.cpp / sentencepiece / tiktoken layout: every file on the allow list.
SAFE_MODEL = [
    "model-00001-of-00002.safetensors",
    "model.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
    "original/tokenizer.model",
    "cl100k_base.tiktoken",
    "chat_template.jinja",
    "README.md",
    "LICENSE",
    "USE_POLICY.md",
    "params.yaml",
    "llama-3-8b.Q4_K_M.GGUF",
]


def test_every_file_of_a_safe_model_is_allowed_without_a_warning() -> None:
    assert check_model_files(SAFE_MODEL, allow_pickle=False) == []


@pytest.mark.parametrize(
    "path",
    [
        "pytorch_model.bin",
        "model.pt",
        "adapter.pth",
        "optimizer.pth.tar",
        "exported.pt2",
        "tokenizer.pkl",
        "features.pickle",
        "pipeline.joblib",
        "embeddings.npy",
        "arrays.npz",
        "last.ckpt",
        "sub/dir/Model.PT",  # case and nesting do not help
    ],
)
def test_pickle_capable_formats_are_refused_and_named_as_such(path: str) -> None:
    with pytest.raises(PyctlError) as caught:
        check_model_files([*SAFE_MODEL, path], allow_pickle=False)
    message = caught.value.message
    assert f"refusing pickle-capable file(s) {path}: loading them runs arbitrary code" in message
    assert "nothing was uploaded" in message and "\n" not in message
    assert check_model_files([*SAFE_MODEL, path], allow_pickle=True) == [
        f"{path} is a pickle-capable format: loading it runs arbitrary code"
    ]


@pytest.mark.parametrize(
    "path",
    [
        "modeling_llama.py",
        "model.h5",
        "flax_model.msgpack",
        "model.onnx",
        "weights.tar",
        "run.sh",
        "Makefile",
    ],
)
def test_formats_not_on_the_allow_list_are_refused_too(path: str) -> None:
    """An allow list, not a deny list: a format nobody listed is refused (code, Keras h5 lambdas, ...)."""
    with pytest.raises(PyctlError, match=rf"format not on the safe list {re.escape(path)};"):
        check_model_files(["model.safetensors", path], allow_pickle=False)
    assert check_model_files([path], allow_pickle=True) == [
        f"{path} is not a known-safe format (uploaded because of --allow-pickle)"
    ]


def test_the_refusal_names_the_exclude_for_each_suffix() -> None:
    with pytest.raises(PyctlError) as caught:
        check_model_files(["model.safetensors", "a.pth.tar", "b.bin", "c.bin"], allow_pickle=False)
    assert caught.value.message.endswith(
        "the safetensors are there too: leave the others out with --exclude '*.bin' --exclude '*.pth.tar'"
    )
    with pytest.raises(PyctlError) as caught:
        check_model_files(["model.safetensors", "Makefile"], allow_pickle=False)
    assert caught.value.message.endswith("convert to safetensors, or pass --allow-pickle")


def test_safe_names_are_exact_file_names() -> None:
    assert is_safe_format("LICENSE") and is_safe_format("sub/NOTICE")
    assert not is_safe_format("LICENSE.sh") and not is_safe_format("license")
