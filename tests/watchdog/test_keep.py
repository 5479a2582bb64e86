"""`pyctl watchdog keep INSTANCE --env NAME --for/--until/--clear` on AWS (moto over HTTP, real clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyctl.commands.watchdog import watchdog_group
from pyctl.core.idle import KEEP_UNTIL_TAG, keep_until, parse_duration, parse_time
from pyctl.errors import PyctlError

from .conftest import REGION, Fleet

DEV = Path(__file__).resolve().parents[2] / "infra" / "envs" / "dev"  # region us-east-1


def invoke(*args: str):
    return CliRunner().invoke(watchdog_group, list(args))


def tags(fleet: Fleet, name: str) -> dict[str, str]:
    res = fleet.ec2.describe_instances(InstanceIds=[fleet.ids[name]])
    return {t["Key"]: t["Value"] for t in res["Reservations"][0]["Instances"][0].get("Tags", [])}


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("4h", timedelta(hours=4)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
    ],
)
def test_durations(text, delta):
    assert parse_duration(text) == delta


@pytest.mark.parametrize("text", ["", "4", "h", "-1h", "0m", "4 hours"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_keep_until_needs_exactly_one_and_a_future_time():
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert keep_until(now, until="2026-11-22T18:00:00Z") == datetime(2026, 11, 22, 18, tzinfo=UTC)
    for kwargs in ({}, {"for_": "1h", "until": "2026-11-23T00:00:00Z"}):
        with pytest.raises(ValueError, match="one of --for"):
            keep_until(now, **kwargs)
    with pytest.raises(ValueError, match="not in the future"):
        keep_until(now, until="2026-11-22T11:00:00Z")


def test_keep_tags_the_instance_and_report_shows_it(fleet: Fleet) -> None:
    fleet.now -= timedelta(minutes=45)
    fleet.gpu_metrics(fleet.instance("idle", "g5.xlarge", tags={"pyctl:env": "dev"}), [[1.0]])
    result = invoke("keep", fleet.ids["idle"], "--env", str(DEV), "--for", "4h")
    assert result.exit_code == 0, result.output
    until = parse_time(tags(fleet, "idle")[KEEP_UNTIL_TAG])
    assert timedelta(hours=3, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=4)
    report = invoke("report", "--region", REGION)
    assert report.exit_code == 0, report.output
    row = next(line for line in report.output.splitlines() if fleet.ids["idle"] in line)
    assert "excluded" in row and "keep-alive until" in row
    run = invoke("run", "--region", REGION, "--all-envs", "--json")
    assert '"action": "none"' in run.output and fleet.state("idle") == "running"

    cleared = invoke("keep", fleet.ids["idle"], "--env", str(DEV), "--clear")
    assert cleared.exit_code == 0, cleared.output
    assert KEEP_UNTIL_TAG not in tags(fleet, "idle")


def test_keep_refuses_an_instance_of_another_env_and_changes_nothing(fleet: Fleet) -> None:
    fleet.instance("prod-node", tags={"pyctl:env": "prod"})
    fleet.instance("untagged")
    for name, why in (
        ("prod-node", "belongs to env 'prod'"),
        ("untagged", "carries no pyctl:env or Env tag"),
    ):
        result = invoke("keep", fleet.ids[name], "--env", str(DEV), "--for", "1h")
        assert isinstance(result.exception, PyctlError) and result.exception.exit_code == 2
        assert f"instance {fleet.ids[name]} {why}, not env 'dev': not changed" in str(result.exception)
        assert KEEP_UNTIL_TAG not in tags(fleet, name)
    missing = invoke("keep", "i-0123456789abcdef0", "--env", str(DEV), "--for", "1h")
    assert "instance i-0123456789abcdef0 not found in us-east-1" in str(missing.exception)
