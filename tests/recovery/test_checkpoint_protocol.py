"""Table tests for the pure checkpoint protocol (pyctl.core.checkpoint)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pyctl.core.checkpoint import (
    AgentAction,
    CheckpointManifest,
    Notice,
    NoticeKind,
    StoredStep,
    agent_action,
    build_checkpoint_manifest,
    candidate_steps,
    complete_local_steps,
    group_listing,
    job_prefix,
    manifest_problem,
    next_upload,
    notice_deadline,
    parse_step_dir,
    retention_plan,
    step_prefix,
    time_lost,
)
from pyctl.core.manifest import ManifestError

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("prefix", "job", "step", "expected"),
    [
        ("", "llm", 5, "checkpoints/llm/step-5/"),
        ("team-a", "llm", 0, "team-a/checkpoints/llm/step-0/"),
        ("/team-a/x/", "llm.v2", 120, "team-a/x/checkpoints/llm.v2/step-120/"),
    ],
)
def test_key_layout(prefix: str, job: str, step: int, expected: str) -> None:
    assert step_prefix(prefix, job, step) == expected


@pytest.mark.parametrize("job", ["", "a/b", "../x", "-lead", "x" * 129, "a b"])
def test_job_names_that_would_break_the_key_layout_are_refused(job: str) -> None:
    with pytest.raises(ManifestError):
        job_prefix("", job)


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("step-0", 0),
        ("step-42", 42),
        ("step-042", None),
        ("step-", None),
        ("step-1.tmp", None),
        ("steps-1", None),
    ],
)
def test_step_directory_names(name: str, step: int | None) -> None:
    assert parse_step_dir(name) == step


def _manifest_dir(tmp_path: Path) -> Path:
    root = tmp_path / "step-7"
    (root / "shards").mkdir(parents=True)
    (root / "state.json").write_text('{"step": 7}')
    (root / "shards" / "0.bin").write_bytes(b"\x00" * 100)
    (root / "COMPLETE").write_text("")
    return root


def test_manifest_round_trip_leaves_out_the_local_marker(tmp_path: Path) -> None:
    manifest = build_checkpoint_manifest(_manifest_dir(tmp_path), job="llm", step=7, now=NOW)
    assert [e.path for e in manifest.files.files] == ["shards/0.bin", "state.json"]
    parsed = CheckpointManifest.from_json(manifest.to_json(), job="llm", step=7)
    assert parsed == manifest
    assert '"time": "2026-11-22T08:00:00Z"' in manifest.to_json()


@pytest.mark.parametrize(
    ("job", "step", "edit", "message"),
    [
        ("other", 7, None, "names job 'llm'"),
        ("llm", 8, None, "names step 7"),
        ("llm", 7, ('"time": "2026-11-22T08:00:00Z"', '"time": "yesterday"'), "not ISO 8601"),
        ("llm", 7, ('"time": "2026-11-22T08:00:00Z"', '"time": 3'), "ISO 8601 string"),
        ("llm", 7, ('"step": 7', '"step": true'), "names step True"),
        ("llm", 7, ('"format": 1', '"format": 2'), "format 2"),
        ("llm", 7, ('"path": "state.json"', '"path": "../state.json"'), "'..'"),
        ("llm", 7, ('"path": "state.json"', '"path": "MANIFEST.json"'), "MANIFEST.json itself"),
    ],
)
def test_a_manifest_that_lies_is_refused(
    tmp_path: Path, job: str, step: int, edit: tuple[str, str] | None, message: str
) -> None:
    text = build_checkpoint_manifest(_manifest_dir(tmp_path), job="llm", step=7, now=NOW).to_json()
    if edit:
        assert edit[0] in text
        text = text.replace(*edit)
    with pytest.raises(ManifestError, match=message):
        CheckpointManifest.from_json(text, job=job, step=step)


def test_listing_grouped_by_step_and_only_steps_with_a_manifest_are_candidates() -> None:
    head = "p/checkpoints/llm/"
    listing = [
        (head + "step-10/state.json", 5),
        (head + "step-10/MANIFEST.json", 300),
        (head + "step-20/state.json", 5),  # an upload killed midway: no manifest
        (head + "step-5/MANIFEST.json", 300),
        (head + "notes.txt", 1),
        ("p/checkpoints/llm-other/step-99/MANIFEST.json", 300),
    ]
    grouped = group_listing("p", "llm", listing)
    assert sorted(grouped) == [5, 10, 20]
    assert grouped[10].objects == {"state.json": 5, "MANIFEST.json": 300}
    assert candidate_steps(grouped) == [10, 5]


def test_a_manifest_naming_a_missing_or_short_file_is_not_complete(tmp_path: Path) -> None:
    manifest = build_checkpoint_manifest(_manifest_dir(tmp_path), job="llm", step=7, now=NOW)
    full = {"state.json": 11, "shards/0.bin": 100, "MANIFEST.json": 400}
    assert manifest_problem(StoredStep(7, full), manifest) is None
    assert "not stored" in str(manifest_problem(StoredStep(7, {"state.json": 11}), manifest))
    assert "99 bytes" in str(manifest_problem(StoredStep(7, {**full, "shards/0.bin": 99}), manifest))


@pytest.mark.parametrize(
    ("complete", "stored", "keep", "kept", "deleted"),
    [
        ([], [3], 2, (), ()),
        ([10], [10], 3, (10,), ()),
        ([10, 20, 30, 40], [10, 20, 30, 40], 2, (30, 40), (10, 20)),
        ([10, 30], [10, 15, 30, 35], 1, (30,), (10, 15)),  # 15 abandoned; 35 may still be uploading
    ],
)
def test_retention_keeps_the_last_k_complete(
    complete: list[int], stored: list[int], keep: int, kept: tuple[int, ...], deleted: tuple[int, ...]
) -> None:
    plan = retention_plan(complete, stored, keep)
    assert (plan.keep, plan.delete) == (kept, deleted)


def test_retention_refuses_to_keep_nothing() -> None:
    with pytest.raises(ValueError):
        retention_plan([1], [1], 0)


@pytest.mark.parametrize(
    ("complete", "uploaded", "expected"),
    [
        ([], [], None),
        ([10, 20], [], 20),
        ([10, 20], [20], None),
        ([10, 20, 30], [20], 30),
        ([10], [20], None),
    ],
)
def test_only_the_newest_complete_checkpoint_is_uploaded(
    complete: list[int], uploaded: list[int], expected: int | None
) -> None:
    assert next_upload(complete, uploaded) == expected


def test_local_steps_count_only_with_the_complete_marker(tmp_path: Path) -> None:
    for name, complete in [("step-1", True), ("step-2", False), ("step-3", True), ("tmp", True)]:
        (tmp_path / name).mkdir()
        if complete:
            (tmp_path / name / "COMPLETE").write_text("")
    assert complete_local_steps(tmp_path) == [1, 3]
    assert complete_local_steps(tmp_path / "absent") == []


INTERRUPT = Notice(NoticeKind.INTERRUPTION, NOW, "terminate")
REBALANCE = Notice(NoticeKind.REBALANCE, NOW - timedelta(minutes=5))


@pytest.mark.parametrize(
    ("notice", "handled", "action"),
    [
        (None, [], AgentAction.NOTHING),
        (REBALANCE, [], AgentAction.EARLY_CHECKPOINT),
        (REBALANCE, [REBALANCE], AgentAction.NOTHING),
        (INTERRUPT, [], AgentAction.FINAL_CHECKPOINT),
        (INTERRUPT, [REBALANCE], AgentAction.FINAL_CHECKPOINT),
        (INTERRUPT, [INTERRUPT], AgentAction.NOTHING),
        (REBALANCE, [INTERRUPT], AgentAction.NOTHING),
    ],
)
def test_agent_action(notice: Notice | None, handled: list[Notice], action: AgentAction) -> None:
    assert agent_action(notice, handled) is action


def test_imds_documents_become_notices() -> None:
    assert Notice.interruption({"action": "stop", "time": "2026-11-22T08:00:00Z"}) == Notice(
        NoticeKind.INTERRUPTION, NOW, "stop"
    )
    assert Notice.rebalance({"noticeTime": "2026-11-22T08:00:00Z"}).time == NOW


def test_deadline_leaves_the_upload_margin() -> None:
    assert notice_deadline(NOW, timedelta(seconds=30)) == NOW - timedelta(seconds=30)


@pytest.mark.parametrize(
    ("checkpoint", "expected"),
    [
        (None, None),
        (NOW - timedelta(minutes=7), timedelta(minutes=7)),
        (NOW + timedelta(seconds=40), timedelta(0)),
    ],
)
def test_time_lost(checkpoint: datetime | None, expected: timedelta | None) -> None:
    assert time_lost(NOW, checkpoint) == expected
