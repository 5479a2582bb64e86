"""What keeps the watchdog bounded at fleet scale: readings reduced point by point (same evidence as the
datapoints), a summary that stays small at 10,000 instances, the module's memory and timeout variables."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pyctl.core import idle
from pyctl.core.idle import Decision, GpuReading, GpuSeries, Window
from tests.terraform.tfconfig import load_module

from .tfviews import plain

ROOT = Path(__file__).resolve().parents[2]
WINDOW = Window(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), datetime(2026, 12, 1, 12, 30, tzinfo=UTC), 60)


@pytest.mark.parametrize("seed", range(5))
def test_a_reading_gives_the_same_evidence_as_the_datapoints(seed: int) -> None:
    rng = random.Random(seed)
    # Points before, inside (with gaps and two in one period) and after the window.
    stamps = [
        WINDOW.start + timedelta(seconds=rng.randrange(-600, 2400)) for _ in range(rng.randrange(0, 60))
    ]
    values = [rng.uniform(0, 100) for _ in stamps]
    series = GpuSeries("3", stamps, values)
    reading = GpuReading("3", WINDOW)
    for when, value in zip(stamps, values, strict=True):
        reading.add(when, value)
    inside = [v for t, v in zip(stamps, values, strict=True) if WINDOW.start <= t < WINDOW.end]
    periods = {
        int((t - WINDOW.start).total_seconds()) // 60 for t in stamps if WINDOW.start <= t < WINDOW.end
    }
    expected = idle.GpuEvidence("3", max(inside, default=None), len(inside), len(periods) / 30)
    assert idle.gpu_evidence(reading, WINDOW) == idle.gpu_evidence(series, WINDOW) == expected


def test_merged_readings_cover_the_union_of_periods() -> None:
    a, b = GpuReading("0", WINDOW), GpuReading("0", WINDOW)
    a.add(WINDOW.start, 1.0)
    b.add(WINDOW.start, 2.0)
    b.add(WINDOW.start + timedelta(minutes=5), 3.0)
    a.merge(b)
    assert idle.gpu_evidence(a, WINDOW) == idle.GpuEvidence("0", 3.0, 3, 2 / 30)


def fleet_decisions(n: int) -> list[Decision]:
    out = []
    for i in range(n):
        d = Decision(
            f"i-{i:017x}",
            "idle",
            "stop",
            "all 8 GPUs below 5% for 30 min (max 4.9%); idle on-demand " + "x" * 80,
            region="us-east-1",
            instance_type="p4d.24xlarge",
            hourly_cost=21.96 + i / 1000,
        )
        kind = i % 4
        if kind == 0:
            d = replace(d, outcome="done")
        elif kind == 1:
            d = replace(d, outcome="failed", alert=True, error="InternalError: " + "y" * 500)
        elif kind == 2:
            d = replace(d, action="none", alert=True, reason="idle reserved capacity")
        else:
            d = replace(d, verdict="busy", action="none")
        out.append(d)
    return out


def test_the_summary_at_10000_instances_is_bounded_and_counts_everything() -> None:
    errors = [f"aws r-{n}: listing instances failed: Throttling" for n in range(100)]
    summary = idle.summarize(fleet_decisions(10_000), dry_run=False, errors=errors)
    text = summary.text(log="CloudWatch Logs /aws/lambda/dev-watchdog")
    size = len(text.encode())
    assert size < idle.SUMMARY_MAX_BYTES < 256 * 1024
    lines = text.splitlines()
    assert lines[1] == "2500 acted, 2500 failed, 2500 attention, 100 errors"
    assert sum(line.startswith("- FAILED: ") for line in lines) == idle.SUMMARY_TOP
    assert "- ... and 2480 more failed" in lines and "- ... and 2480 more acted" in lines
    assert "- ... and 80 more errors" in lines
    assert lines[-1] == "every decision, one JSON line each: CloudWatch Logs /aws/lambda/dev-watchdog"
    # The costliest come first, each line one line and cut.
    first_failed = next(line for line in lines if line.startswith("- FAILED: "))
    assert f"i-{9997:017x}" in first_failed and len(first_failed) < 800


def test_an_oversized_summary_is_cut_at_a_line() -> None:
    long_errors = ["e" * 290 for _ in range(200)]
    text = idle.summarize([], False, long_errors).text(top=200)
    assert len(text.encode()) <= idle.SUMMARY_MAX_BYTES
    assert text.endswith("the log has every decision")


@pytest.mark.parametrize(
    ("module", "variables", "where"),
    [
        ("aws-gpu-watchdog", {"memory_size": 1024, "timeout_seconds": 600}, "module.function"),
        ("gcp-gpu-watchdog", {"memory": "1Gi", "timeout_seconds": 540}, "service_config"),
    ],
)
def test_function_memory_and_timeout_are_module_variables(
    module: str, variables: dict[str, object], where: str
) -> None:
    directory = ROOT / "infra" / "modules" / module
    text = (directory / "main.tf").read_text()
    declared = plain(load_module(directory).labelled("variable"))
    for name, default in variables.items():
        assert declared[name]["default"] == default and declared[name]["nullable"] is False, name
        assert f"= var.{name}" in text, f"{name} not passed to the function ({where})"
    readme = (directory / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in variables)
