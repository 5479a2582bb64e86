"""`pyctl watchdog run --env prod --dry-run` (the README's example) when a cloud cannot be reached: one
line per failed cloud/region, the other cloud's decisions still printed, exit 1, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyctl.commands.watchdog import watchdog_group

from .conftest import Fleet

PROD = Path(__file__).resolve().parents[2] / "infra" / "envs" / "prod"


@pytest.fixture
def no_gcp_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Application Default Credentials find nothing: no key file, an empty gcloud config, no metadata server."""
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    for name in (
        "PYCTL_GCP_COMPUTE_ENDPOINT",
        "PYCTL_GCP_MONITORING_ENDPOINT",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ):
        monkeypatch.delenv(name, raising=False)


def invoke(*args: str):
    return CliRunner().invoke(watchdog_group, list(args), catch_exceptions=False)


@pytest.mark.parametrize("as_json", [False, True])
def test_no_gcp_credentials_still_prints_the_aws_decisions(
    fleet: Fleet, no_gcp_credentials: None, as_json: bool
) -> None:
    instance = fleet.instance("idle", tags={"pyctl:env": "prod"})
    fleet.gpu_metrics(instance, [[1.0]])
    result = invoke("run", "--env", str(PROD), "--dry-run", *(["--json"] if as_json else []))
    assert result.exit_code == 1
    if as_json:
        assert [d["instance_id"] for d in json.loads(result.stdout)] == [instance]
    else:
        assert instance in result.stdout
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: gcp acme-ml-prod: ")
    assert "credentials" in errors[0].lower() and "Traceback" not in result.output


def test_no_credentials_at_all_one_line_per_cloud(
    moto_server: object, no_gcp_credentials: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setattr("pyctl.clouds.aws._session", None)  # the shared session caches credentials
    result = invoke("run", "--env", str(PROD), "--dry-run")
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = result.stderr.splitlines()
    assert [e.split(":")[1].strip() for e in errors] == ["aws us-east-1", "gcp acme-ml-prod"]
    assert "NoCredentialsError" in errors[0]
