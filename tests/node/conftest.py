"""The boot scripts of every pool in the shipped envs (and the GCP reserved example), exactly as Terraform
would send them: each root is applied on real Terraform core with the stand-in providers (the user data
depends on the model-cache bucket, known only after apply), and the launch template's user_data / the
instance template's startup-script is taken from the state (`terraform show -json`)."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakes.tfprovider.harness import StandinSession, copy_infra
from terraform_exec.conftest import INFRA, TERRAFORM, data_source_fixtures, local_backend, render_env

ROOTS = ("envs/dev", "envs/staging", "envs/prod", "modules/gcp-gpu-pool/examples/reserved-n1-t4")


@dataclass
class PlannedPool:
    """One pool's boot script and the instance facts the node reads at boot."""

    root: str
    cloud: str
    name: str
    capacity: str
    machine_type: str
    script: bytes
    tags: dict[str, str]  # AWS instance tags / GCE custom metadata (what IMDS / the metadata server serve)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # planned bucket objects: key -> after
    local_ssds: int = 0  # GCP: the template's SCRATCH disks
    state: str = ""  # the root's whole state, as `terraform show -json` prints it
    root_dir: Path = Path()  # the root in the private infra copy (relative object sources start here)


def _resources(module: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from module.get("resources", [])
    for child in module.get("child_modules", []):
        yield from _resources(child)


def _pools(root: str, state: dict[str, Any]) -> list[PlannedPool]:
    pools = []
    objects: dict[str, dict[str, Any]] = {}
    resources = [r for r in _resources(state["values"]["root_module"]) if r["mode"] == "managed"]
    for rc in resources:
        after = rc["values"]
        if rc["type"] in ("aws_s3_object", "google_storage_bucket_object") and after.get(
            "key", after.get("name")
        ):
            objects[after.get("key") or after["name"]] = after
    for rc in resources:
        after = rc["values"]
        if rc["type"] == "aws_launch_template":
            instance_tags = next(
                spec["tags"] for spec in after["tag_specifications"] if spec["resource_type"] == "instance"
            )
            pools.append(
                PlannedPool(
                    root,
                    "aws",
                    instance_tags["pyctl:pool"],
                    instance_tags["pyctl:capacity"],
                    after["instance_type"],
                    base64.b64decode(after["user_data"]),
                    instance_tags,
                    objects,
                )
            )
        elif rc["type"] == "google_compute_instance_template":
            if after["labels"].get("pyctl-fallback") == "twin":
                # The spot pool's on-demand twin: the spot template's bytes with another scheduling
                # (tests/gcp/test_spot_fallback.py keeps the two equal); its pool's box boots the spot one.
                continue
            metadata = dict(after["metadata"])
            pools.append(
                PlannedPool(
                    root,
                    "gcp",
                    after["labels"]["pyctl-pool"],
                    after["labels"]["pyctl-capacity"].replace("-", "_"),
                    after["machine_type"],
                    metadata.pop("startup-script").encode(),
                    {k: v for k, v in metadata.items() if k != "shutdown-script"},
                    objects,
                    local_ssds=sum(1 for d in after["disk"] if d.get("type") == "SCRATCH"),
                )
            )
    return pools


@pytest.fixture(scope="session")
def planned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PlannedPool]:
    """`<root>:<pool>` -> the pool's boot script, for every pool of every root in ROOTS (applied in parallel)."""
    from concurrent.futures import ThreadPoolExecutor

    infra = copy_infra(INFRA, tmp_path_factory.mktemp("node-plans") / "infra")
    with StandinSession(
        tmp_path_factory.mktemp("node-standin"), fixtures=data_source_fixtures(INFRA)
    ) as standin:
        base = standin.environ({k: v for k, v in os.environ.items() if not k.startswith("TF_")})

        def apply(root: str) -> list[PlannedPool]:
            path = infra / root
            extra: dict[str, dict[str, Any]] = {}
            if root.startswith("envs/"):
                render_env(infra, root.split("/", 1)[1])
            else:
                extra = _example_bundle(path)
            local_backend(path)
            env = {**base, "TF_DATA_DIR": str(path / ".terraform")}
            for args in (
                ("init", "-input=false", "-no-color"),
                ("apply", "-input=false", "-no-color", "-auto-approve"),
            ):
                proc = _tf(path, env, *args)
                assert proc.returncode == 0, (
                    f"{root}: terraform {args[0]}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
                )
            shown = _tf(path, env, "show", "-json").stdout
            pools = _pools(root, json.loads(shown))
            for pool in pools:
                pool.state, pool.root_dir = shown, path
                pool.objects = {**pool.objects, **extra}
            return pools

        with ThreadPoolExecutor(max_workers=len(ROOTS)) as pool_runner:
            results = list(pool_runner.map(apply, ROOTS))
    return {f"{pool.root}:{pool.name}": pool for pools in results for pool in pools}


def _example_bundle(root: Path) -> dict[str, dict[str, Any]]:
    """A module example names its agent bundle by a placeholder hash ("build it, upload it, pass its
    key"): do that, in the private copy, with the bundle pyctl builds; returns it as a bucket object."""
    from pyctl.node_bundle import build_bundle

    main = root / "main.tf"
    text = main.read_text()
    placeholder = re.search(r'sha256 = "([0-9a-f]{64})"', text)
    if placeholder is None:
        return {}
    cloud = "gcp" if "gcp-gpu-pool" in str(root) else "aws"
    info = build_bundle(cloud, root / ".pyctl-build")  # type: ignore[arg-type]
    main.write_text(text.replace(placeholder.group(1), info.sha256))
    return {info.key: {"key": info.key, "source": str(info.path)}}


def _tf(path: Path, env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    import subprocess

    return subprocess.run(
        [str(TERRAFORM), *args], cwd=path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
