"""Each benchmark runs in a tiny configuration and prints its table; the simulators' key behaviours hold.

Figures are never asserted here (they belong in benchmarks/RESULTS.md); these tests prove the harnesses
are wired to the real code and model what their docstrings say.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import subprocess
import sys
from array import array
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def idle_reclaim() -> ModuleType:
    return load("idle_reclaim")


@pytest.fixture(scope="module")
def spot_goodput() -> ModuleType:
    return load("spot_goodput")


def test_idle_reclaim_prints_both_tables(
    idle_reclaim: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert idle_reclaim.main(["--days", "1", "--scale", "0.3"]) == 0
    out = capsys.readouterr().out
    for label in ("ours (run_pass)", "seed (average)", "window oracle", "reclaimable (idle, not reserved)"):
        assert label in out
    for kind in idle_reclaim.KINDS:
        assert any(line.startswith(kind + " ") for line in out.splitlines()), kind


def _node(idle_reclaim: ModuleType, kind: str, itype: str, gpus: int, busy_gpu_util: float, **kw: object):
    minutes = 6 * 60
    util = [array("f", [busy_gpu_util] * minutes)] + [array("f", bytes(4 * minutes)) for _ in range(gpus - 1)]
    return idle_reclaim.Node(
        name=kind,
        kind=kind,
        itype=itype,
        gpus=gpus,
        price=10.0,
        reserved=bool(kw.get("reserved", False)),
        work=bytearray(kw.get("work", b"\x01" * minutes)),  # type: ignore[arg-type]
        util=util,
        dropped=bytearray(minutes),
        metrics_delay=(1, 2),
        ready_delay=(3, 4),
        launched_before=120,
    )


def test_one_busy_gpu_of_eight_keeps_the_node_for_ours_only(idle_reclaim: ModuleType) -> None:
    # GPU 0 at 20 %, seven at 0: the instance average is 2.5 % < 5 %, the maximum is 20 %.
    ours = idle_reclaim.simulate([_node(idle_reclaim, "one", "p5.48xlarge", 8, 20.0)], "ours", 1, 30)
    seed = idle_reclaim.simulate([_node(idle_reclaim, "one", "p5.48xlarge", 8, 20.0)], "seed", 1, 30)
    assert sum(ours.wrongful.values()) == 0 and ours.lost_gpu_min == 0
    assert sum(seed.wrongful.values()) > 0 and seed.lost_gpu_min > 0


def test_idle_reserved_is_left_running_by_ours_and_saves_nothing_when_stopped(
    idle_reclaim: ModuleType,
) -> None:
    idle_all_day = bytes(6 * 60)
    for algorithm, stops in (("ours", 0), ("seed", 1)):
        node = _node(idle_reclaim, "r", "p5.48xlarge", 8, 0.0, reserved=True, work=idle_all_day)
        tally = idle_reclaim.simulate([node], algorithm, 1, 30)
        assert tally.reserved_stops == stops
        assert (tally.reserved_reports > 0) == (algorithm == "ours")  # ours reports it at every pass
        assert tally.reclaimed_usd == 0 and tally.reclaimed_gpu_min == 0


def test_idle_standalone_is_reclaimed_after_the_window(idle_reclaim: ModuleType) -> None:
    node = _node(idle_reclaim, "idle", "g5.xlarge", 1, 0.0, work=bytes(6 * 60))
    tally = idle_reclaim.simulate([node], "ours", 1, 30)
    # Stopped at the first pass that sees 30 idle minutes of data (the pass at minute 30 or 45).
    assert 6 * 60 - 45 <= tally.reclaimed_gpu_min <= 6 * 60 - 30
    assert sum(tally.wrongful.values()) == 0


def test_spot_goodput_prints_every_bucket(
    spot_goodput: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--trials", "20", "--job-hours", "24", "--sweep-gb", "10", "--sweep-minutes", "60"]
    assert spot_goodput.main(args) == 0
    out = capsys.readouterr().out
    for label, _ in spot_goodput.BUCKETS:
        assert any(line.startswith(label + " ") for line in out.splitlines()), label
    assert "ours goodput (p10)" in out and "notice ckpt saved" in out


def test_segment_progress_and_finish_agree(spot_goodput: ModuleType) -> None:
    seg = spot_goodput.Segment(w0=2.0, p0=5.0, every=1.0, save=0.1)
    end = seg.finish(8.5)
    assert end == pytest.approx(2.0 + 3 * 1.1 + 0.5)
    assert seg.progress(end) == pytest.approx(8.5)
    assert seg.progress(2.0 + 1.05) == pytest.approx(6.0)  # paused while saving checkpoint 1


def _model(spot_goodput: ModuleType, gb: float):
    """spot_goodput's defaults with a 48 h job and `gb` per node."""
    inputs = argparse.Namespace(
        job_hours=48.0,
        nodes=16,
        checkpoint_minutes=60.0,
        checkpoint_gb=gb,
        save_gbps=2.0,
        upload_mbps=425.0,
        download_mbps=425.0,
        boot_minutes=4.0,
        notice_seconds=120.0,
        poll_seconds=2.0,
        step_seconds=5.0,
        upload_margin_seconds=30.0,
        missed_notice=0.0,
    )
    return spot_goodput.Model.from_args(inputs)


def test_notice_checkpoint_saves_the_work_only_when_it_fits_the_notice(spot_goodput: ModuleType) -> None:
    fits = spot_goodput.simulate(_model(spot_goodput, 10), 200, 3, 0.6)
    assert fits["ours"][1] < 3.0  # minutes lost per interruption: the notice window only
    assert fits["periodic"][1] > 15.0  # about half the interval
    assert fits["none"][1] > fits["periodic"][1]
    too_big = spot_goodput.simulate(_model(spot_goodput, 120), 200, 3, 0.6)  # upload 282 s > 120 s notice
    assert too_big["ours"][1] == pytest.approx(too_big["periodic"][1], rel=0.15)


def test_cli_startup_reports_four_commands_and_leaves_the_checkout_alone(tmp_path: Path) -> None:
    before = sorted(p.name for p in (REPO / "infra" / "envs" / "prod").iterdir())
    env = {**os.environ, "BIN": str(Path(sys.executable).parent)}
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "cli_startup.sh"), "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()
    assert rows[0].split()[:3] == ["command", "(1", "rounds)"]
    assert [r.split("  ")[0] for r in rows[1:]] == [
        'python -c "import click"',
        "pyctl --help",
        "pyctl validate --env prod",
        "pyctl render --env prod",
    ]
    assert sorted(p.name for p in (REPO / "infra" / "envs" / "prod").iterdir()) == before


def test_cli_startup_refuses_bad_rounds() -> None:
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "cli_startup.sh"), "zero"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "ROUNDS must be a positive integer" in done.stderr


def test_no_checkpoint_matches_the_closed_form(spot_goodput: ModuleType) -> None:
    # Restart from zero, no boot, no notice: the expected wall time is (e^(rate*J) - 1) / rate.
    inputs = vars(_model(spot_goodput, 10)) | {"boot": 0.0, "notice": 0.0, "missed_notice": 1.0}
    model = spot_goodput.Model(**inputs)
    monthly = 0.25
    rate = model.nodes * -math.log(1 - monthly) / spot_goodput.MONTH_HOURS
    expected = model.job_hours / ((math.exp(rate * model.job_hours) - 1) / rate)
    got = spot_goodput.simulate(model, 4000, 5, monthly)["none"][0]
    assert got == pytest.approx(expected, rel=0.03)


def test_bench_all_runs_each_reports_missing_quick_modes_and_failures(tmp_path: Path) -> None:
    # The runner over stand-in benchmarks in a copy of the folder: one fails, one lacks --quick, one is absent.
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "bench_all.sh").write_bytes((REPO / "benchmarks" / "bench_all.sh").read_bytes())
    (bench / "idle_reclaim.py").write_text("print('idle table')\n")
    (bench / "spot_goodput.py").write_text("raise SystemExit(3)\n")
    (bench / "gcp_watchdog.py").write_text("print('gcp table')\n")
    (bench / "cli_startup.sh").write_text("#!/usr/bin/env bash\necho cli table\n")
    (bench / "cli_startup.sh").chmod(0o755)
    (bench / "watchdog_scale.py").write_text(
        "import argparse\np = argparse.ArgumentParser()\np.add_argument('--quick', action='store_true')\n"
        "print('scale table quick' if p.parse_args().quick else 'scale table full')\n"
    )
    env = {**os.environ, "BIN": str(Path(sys.executable).parent)}
    done = subprocess.run(
        ["bash", str(bench / "bench_all.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    out = done.stdout
    for table in ("idle table", "gcp table", "cli table", "scale table quick"):
        assert table in out
    assert "=== spot goodput: FAILED (exit 3)" in out and "failed: spot goodput" in done.stderr
    assert "=== model fetch: benchmarks/model_fetch.py is missing: skipped" in out
    (bench / "model_fetch.py").write_text("import sys\nprint('full run', sys.argv)\n")  # no --quick in --help
    (bench / "spot_goodput.py").write_text("print('spot table')\n")
    done = subprocess.run(
        ["bash", str(bench / "bench_all.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "=== model fetch: benchmarks/model_fetch.py does not offer --quick: skipped" in done.stdout
    assert "full run" not in done.stdout
