"""Fixtures for the Terraform workflow tests: a copy of the fixture env whose S3 state lives on moto,
and a helper that runs pyctl's workflow commands through click."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from pyctl.cli import command

FIXTURE_ENV = Path(__file__).parent / "fixtures" / "gpu-env"
STATE_BUCKET = "pyctl-test-tfstate"


@dataclass
class FixtureEnv:
    """A copy of fixtures/gpu-env in tmp_path; `edit` changes its env.yaml like a user would."""

    dir: Path

    @property
    def name(self) -> str:
        return str(self.spec()["env"]["name"])

    def spec(self) -> dict:
        return yaml.safe_load((self.dir / "env.yaml").read_text())

    def edit(self, change: Callable[[dict], None]) -> None:
        spec = self.spec()
        change(spec)
        (self.dir / "env.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.fixture
def make_env(tmp_path: Path, moto_server) -> Callable[..., FixtureEnv]:
    import boto3

    boto3.client("s3").create_bucket(Bucket=STATE_BUCKET)

    def make(name: str = "wf-test", *, protected: bool = False) -> FixtureEnv:
        env = FixtureEnv(tmp_path / "envs" / name)
        shutil.copytree(FIXTURE_ENV, env.dir)

        def rename(spec: dict) -> None:
            spec["env"].update(name=name, protected=protected)
            spec["backend"]["s3"]["key"] = f"{name}/terraform.tfstate"

        env.edit(rename)
        return env

    return make


@pytest.fixture
def fixture_env(make_env: Callable[..., FixtureEnv]) -> FixtureEnv:
    return make_env()


@pytest.fixture(autouse=True)
def _bundled_terraform(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run the terraform core bundled with pyctl (pyctl-terraform), as installed beside this Python."""
    monkeypatch.setenv("PYCTL_TERRAFORM", str(Path(sys.executable).parent / "pyctl-terraform"))
    # No CLI config (and no re-exec of pyctl-terraform to supply one): nothing here uses providers.
    (tmp_path / "empty.tfrc").write_text("")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(tmp_path / "empty.tfrc"))


@pytest.fixture
def pyctl() -> Callable[..., Result]:
    """Invoke one of the workflow commands: pyctl("up", "--env", DIR, ...)."""

    def invoke(name: str, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(command(name), [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke
