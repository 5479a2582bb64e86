"""`warn_minutes`: the first idle verdict warns (tag + notification), a later run stops only once the
warning is `warn_minutes` old and the instance is still idle; busy or kept meanwhile, nothing happens.
Pure decisions first, then runs against moto over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pyctl.clouds.aws import watchdog
from pyctl.core import idle
from pyctl.core.idle import Instance, Settings, warning_step

from .conftest import REGION, Fleet

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
WARN = Settings(warn_minutes=30)


def node(**tags: str) -> Instance:
    return Instance(
        "i-1", NOW - timedelta(hours=3), tags={"AutoShutdown": "true", "pyctl:env": "dev", **tags}
    )


@pytest.mark.parametrize(
    ("warned", "action", "reason"),
    [
        (None, "warn", "warning: will stop at about 12:30 UTC if still idle (idle on-demand); keep it with "
                       "`pyctl watchdog keep i-1 --env dev --for 4h`"),
        (NOW - timedelta(minutes=10), "none", "warned at 11:50 UTC: will stop after 12:20 UTC if still idle"),
        (NOW - timedelta(minutes=30), "stop", "idle on-demand (warned at 2026-11-22T11:30:00+00:00)"),
        # older than warn + max(60, 2 x idle) minutes: the instance was busy since; warn again
        (NOW - timedelta(minutes=91), "warn", None),
    ],
)  # fmt: skip
def test_warning_steps(warned, action, reason):
    tags = {} if warned is None else {idle.WARNED_TAG: warned.isoformat()}
    got_action, got_reason = warning_step(node(**tags), "stop", "idle on-demand", WARN, NOW)
    assert got_action == action
    if reason is not None:
        assert got_reason == reason


def test_an_unreadable_warning_warns_again_rather_than_stopping():
    assert warning_step(node(**{idle.WARNED_TAG: "soon"}), "stop", "x", WARN, NOW)[0] == "warn"


def test_without_warn_minutes_nothing_changes_and_a_warning_saves_nothing():
    assert Settings().warn_minutes == 0
    d = idle.Decision("i-1", "idle", "warn", "w", hourly_cost=4.0)
    assert d.hourly_cost_saved == 0.0
    assert Settings.from_environ({"WATCHDOG_WARN_MINUTES": "15"}).warn_minutes == 15
    with pytest.raises(ValueError, match="warn_minutes"):
        Settings(warn_minutes=-1)


def run_at(fleet: Fleet, minutes_before_now: int, settings: Settings = WARN) -> watchdog.RunResult:
    return watchdog.run(
        [REGION], settings, now=fleet.now - timedelta(minutes=minutes_before_now), all_envs=True
    )


def tags(fleet: Fleet, name: str) -> dict[str, str]:
    res = fleet.ec2.describe_instances(InstanceIds=[fleet.ids[name]])
    return {t["Key"]: t["Value"] for t in res["Reservations"][0]["Instances"][0].get("Tags", [])}


def test_warn_then_stop_on_a_later_run_still_idle(fleet: Fleet) -> None:
    fleet.now += timedelta(minutes=40)  # the last run; instances launched 85 min before it
    fleet.gpu_metrics(fleet.instance("idle", tags={"pyctl:env": "dev"}), [[1.0]], minutes=80)

    first = run_at(fleet, 40)
    (d,) = first.decisions
    assert (d.action, d.outcome) == ("warn", "done")
    assert idle.WARNED_TAG in tags(fleet, "idle") and idle.ACTED_TAG not in tags(fleet, "idle")
    assert fleet.state("idle") == "running"
    assert first.summary.notify and "- WARNING: " in first.summary.text()
    assert "pyctl watchdog keep" in first.summary.text() and "--env dev" in first.summary.text()

    second = run_at(fleet, 25)  # 15 minutes after the warning
    assert [(d.action, d.outcome) for d in second.decisions] == [("none", "")]
    assert "warned at" in second.decisions[0].reason and fleet.state("idle") == "running"

    third = run_at(fleet, 0)  # 40 minutes after the warning, still idle
    assert [(d.action, d.outcome) for d in third.decisions] == [("stop", "done")]
    assert fleet.state("idle") in ("stopping", "stopped")


def test_busy_after_the_warning_is_not_stopped(fleet: Fleet) -> None:
    fleet.now += timedelta(minutes=40)
    # idle until 35 minutes before the last run, then busy
    fleet.gpu_metrics(
        fleet.instance("woke", tags={"pyctl:env": "dev"}), [[60.0] * 35 + [1.0] * 45], minutes=80
    )
    assert run_at(fleet, 40).decisions[0].action == "warn"
    last = run_at(fleet, 0)
    assert (last.decisions[0].verdict, last.decisions[0].action) == ("busy", "none")
    assert fleet.state("woke") == "running"


def test_kept_after_the_warning_is_not_stopped(fleet: Fleet) -> None:
    fleet.now += timedelta(minutes=40)
    fleet.gpu_metrics(fleet.instance("kept", tags={"pyctl:env": "dev"}), [[1.0]], minutes=80)
    assert run_at(fleet, 40).decisions[0].action == "warn"
    watchdog.keep_instance(fleet.ec2, fleet.ids["kept"], "dev", fleet.now + timedelta(hours=4))
    last = run_at(fleet, 0)
    assert (last.decisions[0].verdict, last.decisions[0].action) == ("excluded", "none")
    assert fleet.state("kept") == "running"


def test_env_yaml_warn_minutes_reaches_the_rendered_inputs_and_the_workstation_run(tmp_path) -> None:
    import json
    import shutil
    from pathlib import Path

    from pyctl.commands.watchdog import watch_target
    from pyctl.render import TFVARS_FILE, render_env
    from pyctl.spec import load_env

    dev = Path(__file__).resolve().parents[2] / "infra/envs/dev"
    plain = json.loads(render_env(load_env(str(dev))).files[TFVARS_FILE])
    assert "warn_minutes" not in plain["watchdog"]  # unset: the rendered files stay as they were
    env_dir = tmp_path / "dev"
    shutil.copytree(dev, env_dir, ignore=shutil.ignore_patterns(".terraform*", ".pyctl-build"))
    text = (env_dir / "env.yaml").read_text().replace("watchdog:\n", "watchdog:\n  warn_minutes: 15\n")
    (env_dir / "env.yaml").write_text(text)
    rendered = json.loads(render_env(load_env(str(env_dir))).files[TFVARS_FILE])
    assert rendered["watchdog"]["warn_minutes"] == 15
    assert watch_target(str(env_dir), ())[1].warn_minutes == 15
