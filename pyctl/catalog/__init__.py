"""The GPU catalog: GPU models and the AWS instance types / GCP machine types that carry them.

Data lives in `data/*.json` (a stateless description, regenerated offline); this module loads and
validates it and answers the questions the spec, render, sizing and cost code ask.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Cloud = Literal["aws", "gcp"]


class Gpu(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    vram_gib: int = Field(gt=0)
    architecture: str
    gcp_accelerator: str | None = None  # the GCP accelerator type name, where GCP offers this GPU


class InstanceType(BaseModel):
    """An AWS instance type or GCP machine type that carries GPUs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cloud: Cloud
    name: str
    family: str
    gpu: str
    # None for GCP N1, where accelerators are attached per pool (see attachable_gpu_counts).
    gpu_count: int | None = Field(default=None, gt=0)
    attachable_gpu_counts: tuple[int, ...] = ()
    vcpus: int = Field(gt=0)
    memory_gib: float = Field(gt=0)
    local_nvme_gb: int = Field(default=0, ge=0)

    @property
    def attaches_accelerators(self) -> bool:
        return self.gpu_count is None


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: dict[str, Gpu]
    instance_types: dict[Cloud, dict[str, InstanceType]]

    def gpu(self, gpu_id: str) -> Gpu | None:
        return self.gpus.get(gpu_id)

    def instance_type(self, cloud: Cloud, name: str) -> InstanceType | None:
        return self.instance_types[cloud].get(name)

    def types_with_gpu(self, cloud: Cloud, gpu_id: str) -> list[InstanceType]:
        """Types of `cloud` carrying `gpu_id`, smallest first (GPU count, then vCPUs)."""
        found = [t for t in self.instance_types[cloud].values() if t.gpu == gpu_id]
        return sorted(
            found, key=lambda t: (t.gpu_count or min(t.attachable_gpu_counts or (1,)), t.vcpus, t.name)
        )

    def default_type_for(self, cloud: Cloud, gpu_id: str, gpus_per_instance: int) -> InstanceType | None:
        """The smallest type of `cloud` with exactly `gpus_per_instance` of `gpu_id`."""
        for t in self.types_with_gpu(cloud, gpu_id):
            if t.gpu_count == gpus_per_instance or gpus_per_instance in t.attachable_gpu_counts:
                return t
        return None


def _read(name: str) -> dict[str, object]:
    text = resources.files("pyctl.catalog").joinpath("data", name).read_text(encoding="utf-8")
    data: dict[str, object] = json.loads(text)
    return data


@cache
def load_catalog() -> Catalog:
    """The shipped catalog, validated once per process."""
    gpus = {k: {"id": k, **v} for k, v in _read("gpus.json")["gpus"].items()}  # type: ignore[attr-defined]
    aws = {k: {"cloud": "aws", "name": k, **v} for k, v in _read("aws.json")["instance_types"].items()}  # type: ignore[attr-defined]
    gcp = {k: {"cloud": "gcp", "name": k, **v} for k, v in _read("gcp.json")["machine_types"].items()}  # type: ignore[attr-defined]
    catalog = Catalog.model_validate({"gpus": gpus, "instance_types": {"aws": aws, "gcp": gcp}})
    for cloud_types in catalog.instance_types.values():
        for t in cloud_types.values():
            if t.gpu not in catalog.gpus:
                raise ValueError(f"catalog: {t.cloud} type {t.name} names unknown GPU {t.gpu!r}")
    return catalog
