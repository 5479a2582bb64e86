"""Run real Terraform core against the stand-in providers.

Two ways in, both used by the tests:
- a `filesystem_mirror` (unpacked layout) in a CLI config, so `terraform init` installs the stand-ins as
  hashicorp/aws 6.69.1 and hashicorp/google(-beta) 8.7.0 and Terraform starts them itself;
- `StandinSession`: one long-lived stand-in per provider for a whole test session, handed to Terraform through
  `TF_REATTACH_PROVIDERS` (Terraform would otherwise start each provider 2-3 times per command, ~0.5 s each).

A `.terraform.lock.hcl` written by an init against the mirror holds the stand-ins' hashes: never commit it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .schema import PROVIDERS

HERE = Path(__file__).resolve().parent
SERVER = HERE / "server.py"
PLATFORM = "linux_amd64"


# What a private copy of infra/ leaves behind: state, provider caches and pyctl's build artifacts.
_COPY_IGNORE = (
    ".terraform",
    "*.tfstate*",
    "*.tfplan",
    ".pyctl-build",
    "functions.auto.tfvars.json",
    "agent_bundles.auto.tfvars.json",
)


def copy_infra(source: Path, dest: Path) -> Path:
    """A private copy of an infra/ tree (rendering and applying it writes nothing into the checkout)."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*_COPY_IGNORE))
    return dest


def build_mirror(root: Path, python: str = sys.executable) -> Path:
    """An unpacked filesystem mirror whose provider executables start the stand-in."""
    for name, (source, version, _) in PROVIDERS.items():
        folder = root / source / version / PLATFORM
        folder.mkdir(parents=True, exist_ok=True)
        exe = folder / f"terraform-provider-{name}_v{version}"
        exe.write_text(
            f'#!/bin/sh\nexec {shlex.quote(python)} {shlex.quote(str(SERVER))} --provider {name} "$@"\n'
        )
        exe.chmod(0o755)
    return root


def write_cli_config(path: Path, mirror: Path) -> Path:
    path.write_text(
        "provider_installation {\n"
        f"  filesystem_mirror {{\n    path    = {json.dumps(str(mirror))}\n"
        '    include = ["registry.terraform.io/hashicorp/*"]\n  }\n'
        "}\n"
        "disable_checkpoint = true\n"
    )
    return path


class StandinSession:
    """Stand-in providers kept alive for many Terraform commands (a pytest session)."""

    def __init__(self, workdir: Path | None = None, fixtures: dict[str, Any] | None = None) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tfstandin-session-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.mirror = build_mirror(self.workdir / "mirror")
        self.cli_config = write_cli_config(self.workdir / "terraformrc", self.mirror)
        self.fixtures_path = self.workdir / "fixtures.json"
        self.log_path = self.workdir / "rpc.log"
        self.set_fixtures(fixtures or {})
        self._procs: list[subprocess.Popen[str]] = []
        self.reattach: dict[str, Any] = {}

    def set_fixtures(self, fixtures: dict[str, Any]) -> None:
        """Data-source answers (subnet AZs, AMIs...): read by the stand-ins at every provider configure."""
        self.fixtures_path.write_text(json.dumps(fixtures, sort_keys=True))

    def start(self) -> StandinSession:
        env = {
            **os.environ,
            "TFSTANDIN_FIXTURES": str(self.fixtures_path),
            "TFSTANDIN_LOG": str(self.log_path),
        }
        for name in PROVIDERS:
            proc = subprocess.Popen(
                [sys.executable, str(SERVER), "--provider", name, "--reattach"],
                stdout=subprocess.PIPE,
                stderr=open(self.workdir / f"{name}.stderr", "w"),  # noqa: SIM115
                text=True,
                env=env,
            )
            self._procs.append(proc)
        for proc in self._procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"stand-in provider did not start; see {self.workdir}/*.stderr")
            self.reattach.update(json.loads(line))
        return self

    def stop(self) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._procs.clear()

    def __enter__(self) -> StandinSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment a Terraform (or pyctl) process needs to use the running stand-ins."""
        env = dict(os.environ if base is None else base)
        env.update(
            {
                "TF_CLI_CONFIG_FILE": str(self.cli_config),
                "TF_REATTACH_PROVIDERS": json.dumps(self.reattach),
                "TF_IN_AUTOMATION": "1",
                "CHECKPOINT_DISABLE": "1",
            }
        )
        return env

    def rpc_log(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]
