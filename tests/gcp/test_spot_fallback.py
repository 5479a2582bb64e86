"""The GCP spot fallback against the Compute REST fake and the GCS fake, through the real clients: a spot
pool shifts to its on-demand twin after max_interruptions preemptions in the window or on a capacity error
(twin first, the spot group emptied only once the twin is stable), back after the cool-down, and converges
after a lost answer or a concurrent pass; only the env's own groups are touched."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from fakes.faultproxy import FaultProxy
from fakes.gcp_compute import ComputeFake
from fakes.gcs_fake import GcsFake

from pyctl.clouds.gcp import compute, recovery

from .conftest import BUCKET, NOW, PROJECT

REGION = "us-central1"
ZONES = ("us-central1-a", "us-central1-b")
SPOT, TWIN = "pyctl-dev-l4", "pyctl-dev-l4-od"
STATE = "models/fallback/l4.json"
CONFIG = recovery.FallbackConfig(
    groups=(recovery.FallbackGroup("l4", SPOT, TWIN, REGION, True, ZONES),),
    state_bucket=BUCKET,
    state_prefix="models/",
    max_interruptions=3,
    window_hours=6,
    cooldown_hours=2,
)


def pool(cf: ComputeFake, spot_size: int = 3) -> tuple[str, str]:
    spot = cf.add_group(SPOT, region=REGION, target_size=spot_size)
    twin = cf.add_group(TWIN, region=REGION, target_size=0)
    return spot, twin


def preempt(cf: ComputeFake, name: str, at: datetime, zone: str = "us-central1-a") -> None:
    cf.add_instance(name, zone=zone, spot=True, labels={"pyctl-env": "dev", "pyctl-capacity": "spot"})
    cf.preempt(name, zone=zone, at=at)


def size(cf: ComputeFake, name: str) -> int:
    return int(cf.groups[(f"regions/{REGION}", name)]["targetSize"])


def resizes(cf: ComputeFake) -> list[tuple[str, int]]:
    """Every resize the fake received, in order: (group, size)."""
    out = []
    for method, path, args in cf.calls:
        if method == "POST" and path.endswith("/resize"):
            out.append((path.rsplit("/", 2)[-2], int(args["size"])))
    return out


def state(gcs: GcsFake) -> dict[str, Any]:
    return dict(json.loads(gcs.buckets[BUCKET][STATE].data))


def run(at: datetime, clients: Any = None, **kw: Any) -> recovery.FallbackOutcome:
    [out] = recovery.run_fallback(PROJECT, kw.pop("config", CONFIG), clients=clients, now=lambda: at, **kw)
    return out


def test_shifts_to_the_twin_after_max_preemptions_in_the_window(
    compute_fake: ComputeFake, gcs: GcsFake
) -> None:
    pool(compute_fake)
    preempt(compute_fake, "pyctl-dev-l4-a1b2", NOW - timedelta(hours=1))
    preempt(compute_fake, "pyctl-dev-l4-c3d4", NOW - timedelta(hours=2), zone="us-central1-b")
    preempt(compute_fake, "pyctl-dev-l4-e5f6", NOW - timedelta(hours=7))  # outside the 6 h window
    preempt(compute_fake, "pyctl-dev-other-a1b2", NOW - timedelta(hours=1))  # another pool's VM

    quiet = run(NOW)
    assert (quiet.mode, quiet.action) == ("spot", "none") and "2 preemptions" in quiet.reason
    assert resizes(compute_fake) == [] and STATE not in gcs.buckets[BUCKET]

    preempt(compute_fake, "pyctl-dev-l4-g7h8", NOW - timedelta(minutes=5), zone="us-central1-b")
    shifted = run(NOW)
    assert (shifted.mode, shifted.action, shifted.outcome) == ("on-demand", "shift", "done")
    assert "3 preemptions within 6h (limit 3)" in shifted.reason
    assert shifted.since == "2026-11-22T12:00:30Z" and shifted.until == "2026-11-22T14:00:30Z"
    # Twin first; the spot group keeps its VMs until the twin's are up (the next pass).
    assert resizes(compute_fake) == [(TWIN, 3)]
    assert state(gcs)["mode"] == "on-demand" and state(gcs)["phase"] == "shifting"

    settled = run(NOW + timedelta(minutes=15))
    assert (settled.action, settled.outcome) == ("settle", "done")
    assert resizes(compute_fake) == [(TWIN, 3), (SPOT, 0)]
    assert (size(compute_fake, SPOT), size(compute_fake, TWIN)) == (0, 3)
    assert state(gcs)["phase"] == "settled" and state(gcs)["size"] == 3

    idle = run(NOW + timedelta(minutes=30))  # within the cool-down: nothing more
    assert (idle.mode, idle.action) == ("on-demand", "none")
    assert len(resizes(compute_fake)) == 2


def test_the_spot_group_is_emptied_only_once_the_twin_is_stable(
    compute_fake: ComputeFake, gcs: GcsFake
) -> None:
    pool(compute_fake)
    for i in range(3):
        preempt(compute_fake, f"pyctl-dev-l4-x{i}x{i}", NOW - timedelta(minutes=10 + i))
    run(NOW)
    compute_fake.groups[(f"regions/{REGION}", TWIN)]["status"]["isStable"] = False  # VMs still creating
    waiting = run(NOW + timedelta(minutes=15))
    assert waiting.action == "none" and "waiting for the twin" in waiting.reason
    assert size(compute_fake, SPOT) == 3
    compute_fake.groups[(f"regions/{REGION}", TWIN)]["status"]["isStable"] = True
    assert run(NOW + timedelta(minutes=30)).action == "settle"
    assert size(compute_fake, SPOT) == 0


def test_a_capacity_error_shifts_at_once(compute_fake: ComputeFake, gcs: GcsFake) -> None:
    spot, _ = pool(compute_fake, spot_size=2)
    error = {"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "message": "The zone does not have enough resources"}
    compute_fake.set_managed(
        spot,
        [
            {"instance": compute_fake.link("zones/us-central1-a/instances/pyctl-dev-l4-q1w2"),
             "currentAction": "CREATING", "lastAttempt": {"errors": {"errors": [error]}}},
            {"instance": compute_fake.link("zones/us-central1-b/instances/pyctl-dev-l4-e3r4"),
             "currentAction": "NONE", "instanceStatus": "RUNNING"},
        ],
    )  # fmt: skip
    out = run(NOW)
    assert (out.mode, out.action) == ("on-demand", "shift")
    assert out.reason == "spot capacity: ZONE_RESOURCE_POOL_EXHAUSTED"
    assert resizes(compute_fake) == [(TWIN, 2)]


def test_shifts_back_after_the_cool_down_and_old_preemptions_do_not_count_again(
    compute_fake: ComputeFake, gcs: GcsFake
) -> None:
    pool(compute_fake)
    for i in range(3):
        preempt(compute_fake, f"pyctl-dev-l4-b{i}b{i}", NOW - timedelta(minutes=20 + i))
    run(NOW)
    run(NOW + timedelta(minutes=15))
    # While on demand the idle watchdog scaled the twin in: the spot group comes back at the twin's size.
    compute_fake.groups[(f"regions/{REGION}", TWIN)]["targetSize"] = 2
    before = len(resizes(compute_fake))

    back = run(NOW + timedelta(hours=2, minutes=1))
    assert (back.mode, back.action, back.outcome) == ("spot", "shift", "done")
    assert "back to spot" in back.reason
    assert resizes(compute_fake)[before:] == [(SPOT, 2)]  # spot first, the twin keeps running
    assert size(compute_fake, TWIN) == 2

    done = run(NOW + timedelta(hours=2, minutes=16))
    assert done.action == "settle"
    assert resizes(compute_fake)[before:] == [(SPOT, 2), (TWIN, 0)]
    assert state(gcs)["mode"] == "spot" and state(gcs)["phase"] == "settled"

    # The three preemptions are still inside the 6 h window, but they ended before the period did.
    again = run(NOW + timedelta(hours=2, minutes=31))
    assert (again.mode, again.action) == ("spot", "none") and "0 preemptions" in again.reason


def _through_proxy(cf: ComputeFake, body: Callable[[FaultProxy, compute.ComputeClients], None]) -> None:
    with FaultProxy(cf.url, seed=3) as proxy:
        body(proxy, compute.compute_clients(proxy.url))


def test_a_lost_resize_answer_converges_without_doubling(compute_fake: ComputeFake, gcs: GcsFake) -> None:
    pool(compute_fake)
    for i in range(3):
        preempt(compute_fake, f"pyctl-dev-l4-l{i}l{i}", NOW - timedelta(minutes=5 + i))

    def body(proxy: FaultProxy, clients: compute.ComputeClients) -> None:
        proxy.once("compute:instanceGroupManagers.resize", "lost_answer")
        first = run(NOW, clients)
        assert first.outcome == "failed"  # the answer is lost: the pass cannot know, it reports
        assert size(compute_fake, TWIN) == 3  # ... though the fake did resize
        second = run(NOW + timedelta(minutes=15), clients)
        assert (second.action, second.outcome) == ("settle", "done")

    _through_proxy(compute_fake, body)
    assert (size(compute_fake, SPOT), size(compute_fake, TWIN)) == (0, 3)
    assert [s for g, s in resizes(compute_fake) if g == TWIN] == [3]  # never resized twice, never to 6


def test_a_lost_state_write_answer_is_a_conflict_and_the_next_pass_carries_on(
    compute_fake: ComputeFake, gcs: GcsFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool(compute_fake)
    for i in range(3):
        preempt(compute_fake, f"pyctl-dev-l4-s{i}s{i}", NOW - timedelta(minutes=5 + i))
    with FaultProxy(gcs.url, seed=4) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        proxy.once("storage:objects.insert", "lost_answer")
        first = run(NOW)
        assert proxy.faults_injected() == {"lost_answer": 1}
        # Stored, answer lost; the client's retry met its own write: 412, so this pass resizes nothing.
        assert first.outcome == "conflict"
        assert state(gcs)["phase"] == "shifting" and resizes(compute_fake) == []
        second = run(NOW + timedelta(minutes=15))
        assert (second.action, second.outcome) == ("resize", "done")
        assert run(NOW + timedelta(minutes=30)).action == "settle"
    assert (size(compute_fake, SPOT), size(compute_fake, TWIN)) == (0, 3)


def test_of_two_passes_at_once_only_one_shifts(compute_fake: ComputeFake, gcs: GcsFake) -> None:
    pool(compute_fake)
    for i in range(3):
        preempt(compute_fake, f"pyctl-dev-l4-c{i}c{i}", NOW - timedelta(minutes=5 + i))
    # The other pass runs between this pass's read of the state and its claim (during its read of the twin).
    compute_fake.before_once("GET", f"instanceGroupManagers/{TWIN}", lambda: run(NOW))
    loser = run(NOW)
    assert loser.outcome == "conflict"
    assert resizes(compute_fake) == [(TWIN, 3)]  # the winner's, once


def test_only_the_envs_groups_are_touched(compute_fake: ComputeFake, gcs: GcsFake) -> None:
    compute_fake.add_group("pyctl-prod-l4", region=REGION, target_size=3)
    compute_fake.add_group("pyctl-prod-l4-od", region=REGION, target_size=0)
    for i in range(3):
        preempt(compute_fake, f"pyctl-prod-l4-p{i}p{i}", NOW - timedelta(minutes=5 + i))
    prod = recovery.FallbackGroup("l4", "pyctl-prod-l4", "pyctl-prod-l4-od", REGION, True, ZONES)
    config = recovery.FallbackConfig((prod,), BUCKET, "models/")
    out = run(NOW, config=config, env="dev")
    assert out.outcome == "failed" and "not a group of env dev" in out.reason
    assert resizes(compute_fake) == [] and compute_fake.calls == []


def test_dry_run_decides_and_changes_nothing(compute_fake: ComputeFake, gcs: GcsFake) -> None:
    pool(compute_fake)
    for i in range(3):
        preempt(compute_fake, f"pyctl-dev-l4-d{i}d{i}", NOW - timedelta(minutes=5 + i))
    out = run(NOW, dry_run=True)
    assert (out.mode, out.action, out.outcome) == ("on-demand", "shift", "dry-run")
    assert resizes(compute_fake) == [] and STATE not in gcs.buckets[BUCKET]


def test_the_config_is_read_as_the_stack_writes_it() -> None:
    text = json.dumps(
        {
            "groups": [{"pool": "l4", "spot_group": SPOT, "twin_group": TWIN, "location": "us-central1-a",
                        "regional": False, "zones": []}],
            "max_interruptions": 2, "window_hours": 3, "cooldown_hours": 1,
            "state_bucket": BUCKET, "state_prefix": "",
        }
    )  # fmt: skip
    config = recovery.FallbackConfig.from_json(text)
    assert config.groups[0].group_zones == ("us-central1-a",)
    assert (config.max_interruptions, config.window_hours, config.cooldown_hours) == (2, 3.0, 1.0)
    assert config.state_key("l4") == "fallback/l4.json"
    with pytest.raises(ValueError, match="state_bucket"):
        recovery.FallbackConfig.from_json(json.dumps({"groups": [], "state_bucket": ""}))


def test_the_state_role_grants_exactly_what_the_state_store_calls() -> None:
    from pathlib import Path

    from tests.terraform.tfconfig import load_module

    module = Path(__file__).resolve().parents[2] / "infra" / "modules" / "gcp-gpu-watchdog"
    [role] = [r for r in load_module(module).resources() if r.name == "fallback_state" and "role" in r.type]
    assert set(role.body["permissions"]) == set(recovery.iam_permissions()["fallback_state"])
    [grant] = [r for r in load_module(module).resources() if r.type == "google_storage_bucket_iam_member"]
    assert "fallback/" in str(grant.body["condition"])  # only the state objects, not the models


GCP_ENV = """\
env: {name: dev, protected: false}
clouds:
  gcp:
    project: acme-ml-dev
    region: us-central1
    network: projects/acme-ml-dev/global/networks/gpu
    subnetwork: projects/acme-ml-dev/regions/us-central1/subnetworks/gpu
pools:
  - name: l4
    cloud: gcp
    zones: [us-central1-a, us-central1-b]
    instance_type: g2-standard-24
    capacity: spot
    min: 0
    desired: 0
    max: 4
    spot: {termination_action: STOP}
backend:
  gcs: {bucket: acme-tfstate-dev, prefix: gpu-platform/dev}
model_cache:
  gcp: {bucket: BUCKET}
"""


def test_jobs_status_shows_a_gcp_pool_on_demand_since_until(
    compute_fake: ComputeFake, gcs: GcsFake, tmp_path: Any
) -> None:
    from click.testing import CliRunner

    from pyctl.commands.jobs import jobs

    (tmp_path / "env.yaml").write_text(GCP_ENV.replace("BUCKET", BUCKET))
    runner = CliRunner()
    quiet = runner.invoke(jobs, ["status", "--env", str(tmp_path)])
    assert quiet.exit_code == 0 and "no GCP pool has shifted" in quiet.output

    pool(compute_fake)
    for i in range(3):
        preempt(compute_fake, f"pyctl-dev-l4-j{i}j{i}", NOW - timedelta(minutes=5 + i))
    config = recovery.FallbackConfig(CONFIG.groups, BUCKET, "")  # the env's bucket, no key prefix
    assert run(NOW, config=config).action == "shift"
    out = runner.invoke(jobs, ["status", "--env", str(tmp_path)])
    assert out.exit_code == 0, out.output
    header, row = out.output.splitlines()
    assert header.split() == ["group", "market", "since", "until", "reason"]
    assert row.split()[:4] == [SPOT, "on-demand", "2026-11-22T12:00:30Z", "2026-11-22T14:00:30Z"]
    assert "3 preemptions within 6h" in row


def test_the_function_reads_the_fallback_from_its_environment() -> None:
    from pyctl.functions.gpu_watchdog_gcp import WatchdogEnvironment

    base = {"WATCHDOG_PROJECT": PROJECT, "WATCHDOG_ENV": "dev"}
    assert WatchdogEnvironment.from_environ({**base, "WATCHDOG_FALLBACK": ""}).fallback is None
    group = {"pool": "l4", "spot_group": SPOT, "twin_group": TWIN, "location": REGION, "regional": True,
             "zones": list(ZONES)}  # fmt: skip
    doc = {"groups": [group], "max_interruptions": 3, "window_hours": 6, "cooldown_hours": 2,
           "state_bucket": BUCKET, "state_prefix": "models/"}  # fmt: skip
    parsed = WatchdogEnvironment.from_environ({**base, "WATCHDOG_FALLBACK": json.dumps(doc)}).fallback
    assert parsed == CONFIG


def test_no_spot_capacity_on_the_way_back_starts_another_on_demand_period(
    compute_fake: ComputeFake, gcs: GcsFake
) -> None:
    spot, _ = pool(compute_fake)
    for i in range(3):
        preempt(compute_fake, f"pyctl-dev-l4-w{i}w{i}", NOW - timedelta(minutes=5 + i))
    run(NOW)
    run(NOW + timedelta(minutes=15))
    later = NOW + timedelta(hours=2, minutes=1)
    assert run(later).action == "shift" and size(compute_fake, SPOT) == 3  # on the way back
    error = {"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "message": "no resources"}
    compute_fake.set_managed(
        spot, [{"currentAction": "CREATING", "lastAttempt": {"errors": {"errors": [error]}}}]
    )
    again = run(later + timedelta(minutes=15))
    assert (again.mode, again.action) == ("on-demand", "shift")
    assert "on the way back" in again.reason and again.until == "2026-11-22T16:16:30Z"
    assert (size(compute_fake, SPOT), size(compute_fake, TWIN)) == (0, 3)  # the twin never lost its VMs


def test_the_twin_template_is_the_spot_template_but_for_its_scheduling() -> None:
    """twin.tf repeats the spot template (a resource cannot be cloned in HCL): any other difference is a
    drift between the two that a change to main.tf forgot to carry over."""
    from pathlib import Path

    from tests.terraform.tfconfig import body_items, load_module

    module = Path(__file__).resolve().parents[2] / "infra" / "modules" / "gcp-gpu-pool"
    templates = {
        r.name: dict(body_items(r.body))
        for r in load_module(module).resources()
        if r.type == "google_compute_instance_template"
    }
    spot, twin = templates["this"], templates["twin"]
    own = {"count", "name_prefix", "description", "labels", "scheduling", "reservation_affinity"}
    same = json.dumps({k: v for k, v in spot.items() if k not in own}, sort_keys=True)
    # The twin's labels say what it is, on the template and its boot disk alike.
    twin_same = json.dumps({k: v for k, v in twin.items() if k not in own}, sort_keys=True)
    assert twin_same.replace("local.twin_labels", "local.labels") == same
    [scheduling] = twin["scheduling"]
    assert scheduling["provisioning_model"] == "STANDARD" and scheduling["preemptible"] is False
    assert "instance_termination_action" not in scheduling
