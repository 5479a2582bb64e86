"""`pyctl jobs status` / `pyctl jobs done` over the table the handler writes."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyctl.clouds.aws.recovery import Recovery
from pyctl.clouds.aws.storage import S3Store
from pyctl.commands.jobs import jobs
from pyctl.core.checkpoint_store import upload_checkpoint
from pyctl.errors import PyctlError

from .conftest import AwsWorld, load_event

DEV_ENV = Path(__file__).resolve().parents[2] / "infra" / "envs" / "dev" / "env.yaml"


def test_status_shows_interruptions_checkpoint_and_time_lost(aws: AwsWorld, tmp_path: Path) -> None:
    env_dir = tmp_path / "dev"
    env_dir.mkdir()
    shutil.copy(DEV_ENV, env_dir / "env.yaml")
    step = tmp_path / "step-1200"
    step.mkdir()
    (step / "state.json").write_text("{}")
    # The last checkpoint was taken 7 minutes before the interruption warning.
    upload_checkpoint(
        S3Store("ckpt", "team-a"), "llm-train", 1200, step, now=datetime(2026, 11, 22, 7, 53, tzinfo=UTC)
    )
    victim = aws.launch_job_instance()
    Recovery(aws.config(), aws.ec2, aws.dynamodb, aws.s3).handle(
        load_event("spot_interruption_warning", victim)
    )

    runner = CliRunner()
    table = runner.invoke(jobs, ["status", "--env", str(env_dir)])
    assert table.exit_code == 0, table.output
    header, row = table.output.splitlines()
    assert header.split() == [
        "job",
        "market",
        "since",
        "until",
        "done",
        "interruptions",
        "last",
        "step",
        "time",
        "lost",
        "instance",
    ]
    assert row.split()[:8] == ["llm-train", "spot", "-", "-", "no", "1", "1200", "7m"]
    assert row.split()[8].startswith("i-")  # the instance id in full, never cut

    assert runner.invoke(jobs, ["done", "--env", str(env_dir), "--job", "llm-train"]).exit_code == 0
    as_json = json.loads(runner.invoke(jobs, ["status", "--env", str(env_dir), "--json"]).output)
    assert as_json[0]["done"] is True and as_json[0]["time_lost_seconds"] == 420

    phantom = runner.invoke(jobs, ["done", "--env", str(env_dir), "--job", "nope"])
    assert isinstance(phantom.exception, PyctlError) and phantom.exception.exit_code == 2
    assert (
        "--job: no job 'nope' recorded in" in phantom.exception.message
        and "(known: llm-train)" in phantom.exception.message
    )
    after = json.loads(runner.invoke(jobs, ["status", "--env", str(env_dir), "--json"]).output)
    assert [j["job"] for j in after] == ["llm-train"]  # no phantom job written


def test_status_needs_an_env_with_aws(tmp_path: Path) -> None:
    missing = CliRunner().invoke(jobs, ["status", "--env", str(tmp_path / "missing")])
    assert isinstance(missing.exception, PyctlError) and "no such env directory" in missing.exception.message
    disabled_env = tmp_path / "gcp"
    disabled_env.mkdir()
    text = DEV_ENV.read_text()
    assert "spot_recovery:\n" in text
    (disabled_env / "env.yaml").write_text(
        text.replace("spot_recovery:\n", "spot_recovery:\n  enabled: false\n")
    )
    disabled = CliRunner().invoke(jobs, ["status", "--env", str(disabled_env)])
    assert (
        isinstance(disabled.exception, PyctlError)
        and "spot_recovery.enabled is false" in disabled.exception.message
    )


def test_time_lost_is_unknown_without_any_checkpoint(aws: AwsWorld, tmp_path: Path) -> None:
    env_dir = tmp_path / "dev"
    env_dir.mkdir()
    shutil.copy(DEV_ENV, env_dir / "env.yaml")
    victim = aws.launch_job_instance()
    Recovery(aws.config(), aws.ec2, aws.dynamodb, aws.s3).handle(
        load_event("spot_interruption_warning", victim)
    )
    result = CliRunner().invoke(jobs, ["status", "--env", str(env_dir)])
    assert result.output.splitlines()[1].split()[6:8] == ["-", "unknown"]


def test_a_missing_table_is_a_user_error(moto_server: object, tmp_path: Path) -> None:
    env_dir = tmp_path / "dev"
    env_dir.mkdir()
    shutil.copy(DEV_ENV, env_dir / "env.yaml")
    result = CliRunner().invoke(jobs, ["status", "--env", str(env_dir)])
    assert isinstance(result.exception, PyctlError)
    assert "table pyctl-dev-spot-recovery not found" in result.exception.message


def test_jobs_without_credentials_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 16 item 7: no traceback for a missing credential.
    env_dir = tmp_path / "dev"
    env_dir.mkdir()
    shutil.copy(DEV_ENV, env_dir / "env.yaml")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never reached: no request is signed
    from pyctl.clouds import aws as aws_clients

    monkeypatch.setattr(aws_clients, "_session", None, raising=False)
    for command in (["status", "--env", str(env_dir)], ["done", "--env", str(env_dir), "--job", "x"]):
        result = CliRunner().invoke(jobs, command)
        assert isinstance(result.exception, PyctlError), result.exception
        assert result.exception.exit_code == 1
        assert result.exception.message.startswith("AWS: no usable credentials")
        assert "\n" not in result.exception.message


def test_gcp_fallback_status_without_google_credentials_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """prod has GCP spot pools: their fallback state is read from GCS, and no Application Default
    Credentials (no env var, no gcloud file, no metadata server) is one line with exit code 1."""
    from pyctl.commands.jobs import _gcp_fallback
    from pyctl.spec import load_env

    spec = load_env("prod").spec
    assert any(p.cloud == "gcp" and p.capacity == "spot" for p in spec.pools)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/gcloud/application_default_credentials.json
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # nothing listens: not on GCE
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    with pytest.raises(PyctlError) as err:
        _gcp_fallback(spec)
    assert err.value.args[0].startswith("GCP: no usable credentials (")
    assert "\n" not in err.value.args[0]
    assert err.value.exit_code == 1
