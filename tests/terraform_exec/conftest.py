"""Real Terraform core over our roots, with stand-in providers serving the real provider schemas.

One stand-in per provider stays up for the session (TF_REATTACH_PROVIDERS). Roots run from a copy of
`infra/` in a temporary folder, so nothing (rendered function zips, .terraform, state) is
written into the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes.tfprovider.harness import StandinSession, copy_infra

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
TERRAFORM = Path(sys.executable).parent / "pyctl-terraform"
PYCTL = Path(sys.executable).parent / "pyctl"

ENVS = sorted(p.name for p in (INFRA / "envs").iterdir() if (p / "env.yaml").exists())
EXAMPLES = sorted(str(p.relative_to(INFRA)) for p in INFRA.glob("modules/*/examples/*") if p.is_dir())
# A root planned with a vars file of its own (e.g. the first-time setup root): path -> vars file
EXTRA_ROOTS: dict[str, str | None] = {
    str(p.parent.relative_to(INFRA)): p.name for p in sorted(INFRA.glob("bootstrap/*/example.tfvars"))
}


def data_source_fixtures(infra: Path) -> dict[str, object]:
    """What the data sources answer, derived from the rendered tfvars: each env subnet's AZ (the i-th subnet
    lies in the region's i-th zone), so pools pick their subnets as they would on the real account."""
    subnets: dict[str, dict[str, str]] = {}
    for tfvars in sorted(infra.glob("envs/*/terraform.tfvars.json")):
        aws = json.loads(tfvars.read_text()).get("aws") or {}
        for i, subnet in enumerate(aws.get("subnet_ids") or []):
            subnets[subnet] = {
                "availability_zone": f"{aws['region']}{'abcdef'[i % 6]}",
                "vpc_id": aws["vpc_id"],
            }
    return {"aws_subnet": subnets}


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinSession]:
    session = StandinSession(tmp_path_factory.mktemp("standin"), fixtures=data_source_fixtures(INFRA))
    with session:
        yield session


@pytest.fixture(scope="session")
def infra_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """infra/ copied, without state or provider caches."""
    return copy_infra(INFRA, tmp_path_factory.mktemp("repo") / "infra")


@dataclass
class Root:
    """One root module in the copy, driven by real Terraform core."""

    dir: Path
    env: dict[str, str]

    def tf(
        self, *args: str, ok: tuple[int, ...] = (0,), stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(TERRAFORM), *args],
            cwd=self.dir,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode not in ok:
            raise AssertionError(
                f"terraform {' '.join(args)} in {self.dir.name} exited {proc.returncode}\n"
                f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
            )
        return proc

    def show_json(self, plan_file: str) -> dict:
        return json.loads(self.tf("show", "-json", plan_file).stdout)


def local_backend(root: Path) -> None:
    """An override file: the roots' S3 backend becomes local state (the S3 path is tested on moto)."""
    if any("backend" in f.read_text() for f in root.glob("*.tf")):
        (root / "zz_standin_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')


@pytest.fixture
def root_in(standin: StandinSession, infra_copy: Path, tmp_path: Path):
    def make(relative: str) -> Root:
        path = infra_copy / relative
        env = standin.environ({k: v for k, v in os.environ.items() if not k.startswith("TF_")})
        env["TF_DATA_DIR"] = str(tmp_path / "tfdata")
        return Root(path, env)

    return make


def render_env(infra: Path, name: str) -> None:
    """`pyctl render` into the copy: committed tfvars/backend (unchanged) and the function packages."""
    proc = subprocess.run(
        [str(PYCTL), "render", "--env", str(infra / "envs" / name)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYCTL_ENVS_DIR": str(infra / "envs")},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
