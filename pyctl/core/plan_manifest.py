"""The manifest written beside a saved plan, binding it to what it was built from.

Terraform refuses a plan whose state moved on (lineage/serial), but not one applied to another env or built
from other inputs; `mismatches` is that check. The git commit is recorded for the reviewer, not checked:
the merge commit that applies a reviewed plan is never the commit that planned it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

MANIFEST_SUFFIX = ".manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PlanManifest:
    env: str
    plan_sha256: str
    inputs_sha256: str
    lock_file_sha256: str | None  # None: no .terraform.lock.hcl (a config without providers)
    terraform_version: str
    git_commit: str
    inputs: Mapping[str, str] = field(default_factory=dict)  # file (relative to the env dir) -> sha256
    destroy: bool = False
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        doc = asdict(self)
        doc["inputs"] = dict(sorted(self.inputs.items()))
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PlanManifest:
        doc: dict[str, Any] = json.loads(text)
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported manifest format_version {doc.get('format_version')!r}")
        names = set(cls.__dataclass_fields__)
        unknown = set(doc) - names
        if unknown:
            raise ValueError(f"unknown manifest keys: {', '.join(sorted(unknown))}")
        return cls(**doc)


def inputs_digest(inputs: Mapping[str, str]) -> str:
    """One sha256 over the (file name, file sha256) pairs, independent of the order given."""
    digest = hashlib.sha256()
    for name, sha in sorted(inputs.items()):
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest()


def mismatches(reviewed: PlanManifest, current: PlanManifest) -> list[str]:
    """Why the reviewed plan must not be applied now; one line per failed check, empty if none."""
    problems = []
    if reviewed.plan_sha256 != current.plan_sha256:
        problems.append("plan file was modified after it was planned (sha256 differs from the manifest)")
    if reviewed.env != current.env:
        problems.append(f"plan was made for env {reviewed.env!r}, not {current.env!r}")
    if reviewed.inputs_sha256 != current.inputs_sha256:
        changed = sorted(
            name
            for name in reviewed.inputs.keys() | current.inputs.keys()
            if reviewed.inputs.get(name) != current.inputs.get(name)
        )
        problems.append(f"rendered inputs changed since planning: {', '.join(changed) or 'file set'}")
    if reviewed.lock_file_sha256 != current.lock_file_sha256:
        missing = (
            " (missing here: commit the lock file terraform init wrote)"
            if current.lock_file_sha256 is None
            else ""
        )
        problems.append(f".terraform.lock.hcl changed since planning (provider versions or hashes){missing}")
    if reviewed.terraform_version != current.terraform_version:
        problems.append(
            f"terraform version differs: planned with {reviewed.terraform_version}, "
            f"this is {current.terraform_version}"
        )
    return problems
