"""Python stubs for Terraform's plugin protocol, generated from proto/ with grpcio-tools on first use.

Generated into a cache folder keyed by the protos' hash (git-ignored), never committed: the stubs must match
the installed protobuf runtime, and regenerating takes about a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

PROTO_DIR = Path(__file__).resolve().parent / "proto"
PROTOS = ("tfplugin6.proto", "grpc_controller.proto", "grpc_stdio.proto")


def _cache_dir() -> Path:
    digest = hashlib.sha256(b"".join((PROTO_DIR / p).read_bytes() for p in PROTOS)).hexdigest()[:12]
    return Path(__file__).resolve().parent / "_gen" / digest


def _generate(out: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    include = Path(grpc_tools.__file__).parent / "_proto"
    for proto in PROTOS:
        code = protoc.main(
            [
                "protoc",
                f"-I{PROTO_DIR}",
                f"-I{include}",
                f"--python_out={tmp}",
                f"--grpc_python_out={tmp}",
                proto,
            ]
        )
        if code != 0:
            raise RuntimeError(f"protoc failed on {proto}")
    with contextlib.suppress(OSError):  # another process generated it first
        tmp.rename(out)


def load() -> dict[str, ModuleType]:
    out = _cache_dir()
    if not out.exists():
        _generate(out)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    names = [
        "tfplugin6_pb2",
        "tfplugin6_pb2_grpc",
        "grpc_controller_pb2",
        "grpc_controller_pb2_grpc",
        "grpc_stdio_pb2",
        "grpc_stdio_pb2_grpc",
    ]
    return {n: importlib.import_module(n) for n in names}
