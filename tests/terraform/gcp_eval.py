"""Evaluate the GCP modules' inputs and locals with real Terraform core, offline.

The Google provider cannot be downloaded, so the modules cannot be planned. Their resource-free parts can:
`variables.tf` (types, defaults, validation blocks) and `locals.tf` (names, labels, rendered node scripts)
of gcp-gpu-pool and of the gcp stack are copied into a scratch tree (with a link to the node templates), and a
root module (JSON syntax, so Python values go in as they are) calls them. `apply` of that root evaluates
everything with Terraform's own type conversion and functions; `plan -json` collects validation errors
per module call.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
POOL_MODULE = REPO_ROOT / "infra" / "modules" / "gcp-gpu-pool"
GCP_STACK = REPO_ROOT / "infra" / "stacks" / "gcp"
Runner = Callable[..., subprocess.CompletedProcess[str]]

# What each evaluated copy exposes (every local the resources use, plus the rendered scripts).
_POOL_OUTPUTS = [
    "base_name",
    "template_prefix",
    "account_id",
    "labels",
    "gpu_capacity",
    "local_ssd_count",
    "boot_disk_type",
    "reservation_name",
    "startup_script",
    "shutdown_script",
]
_STACK_OUTPUTS = ["labels", "pools", "model_versions"]


def rendered_tfvars(env: str) -> dict[str, Any]:
    """What `pyctl render --env ENV` writes to terraform.tfvars.json, from the committed env.yaml."""
    from pyctl.render import AGENT_BUNDLES_FILE, TFVARS_FILE, render_env
    from pyctl.spec import load_env

    rendered = render_env(load_env(env))
    data: dict[str, Any] = json.loads(rendered.files[TFVARS_FILE])
    data.update(json.loads(rendered.generated.get(AGENT_BUNDLES_FILE, b"{}")))  # Terraform loads it too
    return data


def stack_arguments(tfvars: dict[str, Any]) -> dict[str, Any]:
    """The gcp stack's arguments, wired from the root variables as infra/envs/<env>/gcp.tf does."""
    return {
        "env": tfvars["env"],
        "tags": tfvars["tags"],
        "gcp": tfvars["gcp"],
        "pools": tfvars["gcp_pools"],
        "model_cache": tfvars["model_cache"],
    }


# The node agent bundle a call gets unless it names its own (the stack passes gcp-model-cache's output).
SAMPLE_BUNDLE = {
    "bucket": "acme-gpu-models-gcs",
    "key": "agent/" + "ab" * 32 + ".tar.gz",
    "sha256": "ab" * 32,
}


@dataclass(frozen=True)
class Diagnostic:
    module: str  # the calling module block, e.g. "module.bad_spot"
    summary: str
    detail: str


class EvalTree:
    """A scratch tree: resource-free copies of the GCP modules and a root that calls them."""

    def __init__(self, root: Path, run: Runner) -> None:
        """`run(*args, cwd=...)` runs the bundled Terraform offline (conftest.py's run_terraform)."""
        self.run = run
        self.base = root
        self.root = root / "root"
        modules = root / "infra" / "modules"
        self.pool_dir = modules / "gcp-gpu-pool-eval"
        self.stack_dir = root / "infra" / "stacks" / "gcp-eval"
        root.mkdir(parents=True, exist_ok=True)
        self._copy(POOL_MODULE, self.pool_dir, _POOL_OUTPUTS)
        (self.pool_dir / "templates").symlink_to(POOL_MODULE / "templates", target_is_directory=True)
        self._copy(GCP_STACK, self.stack_dir, _STACK_OUTPUTS)
        self.root.mkdir()

    @staticmethod
    def _copy(source: Path, target: Path, outputs: list[str]) -> None:
        target.mkdir(parents=True)
        for name in ("variables.tf", "locals.tf"):
            shutil.copy(source / name, target / name)
        doc = {"output": {name: {"value": f"${{local.{name}}}"} for name in outputs}}
        (target / "outputs.tf.json").write_text(json.dumps(doc, indent=2))

    def write_root(
        self,
        pools: dict[str, dict[str, Any]],
        stacks: dict[str, dict[str, Any]],
        expressions: dict[str, str] | None = None,
    ) -> None:
        """Module calls: `pools` of the pool copy, `stacks` of the stack copy, by call name; `expressions`
        are extra root outputs (Terraform expressions; the pool's templates are at
        `../infra/modules/gcp-gpu-pool-eval/templates`)."""
        calls: dict[str, Any] = {}
        for name, args in pools.items():
            calls[name] = {
                "source": "../infra/modules/gcp-gpu-pool-eval",
                "agent_bundle": SAMPLE_BUNDLE,
                **args,
            }
        for name, args in stacks.items():
            bundle = {"path": "agent-gcp.tar.gz", "sha256": SAMPLE_BUNDLE["sha256"]}
            calls[name] = {"source": "../infra/stacks/gcp-eval", "agent_bundle": bundle, **args}
        outputs = {name: {"value": f"${{module.{name}}}"} for name in calls}
        outputs.update({name: {"value": f"${{{expr}}}"} for name, expr in (expressions or {}).items()})
        (self.root / "main.tf.json").write_text(json.dumps({"module": calls, "output": outputs}, indent=1))
        init = self.run("init", "-input=false", "-no-color", cwd=self.root)
        assert init.returncode == 0, init.stdout + init.stderr

    def evaluate(self) -> dict[str, Any]:
        """Apply the root (no resources: only evaluation) and return each module call's outputs."""
        apply = self.run("apply", "-auto-approve", "-input=false", "-no-color", cwd=self.root)
        assert apply.returncode == 0, apply.stdout + apply.stderr
        out = self.run("output", "-json", cwd=self.root)
        assert out.returncode == 0, out.stderr
        return {name: value["value"] for name, value in json.loads(out.stdout).items()}

    def errors(self) -> list[Diagnostic]:
        """Plan the root and return its error diagnostics (validation failures) by calling module."""
        plan = self.run("plan", "-json", "-input=false", "-no-color", cwd=self.root)
        found = []
        for line in plan.stdout.splitlines():
            message = json.loads(line)
            if message.get("@level") != "error" or "diagnostic" not in message:
                continue
            diag = message["diagnostic"]
            context = (diag.get("snippet") or {}).get("context") or ""
            found.append(Diagnostic(context, diag["summary"], diag.get("detail", "")))
        return found
