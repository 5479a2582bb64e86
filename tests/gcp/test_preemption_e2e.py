"""End to end on this machine, GCE flavour: the stand-in trainer under `pyctl-agent watch --cloud gcp`, the
metadata-server fake flipping instance/preempted, the GCS fake holding the checkpoints, the recovery pass
starting the preempted VM in the Compute fake, and a second trainer resuming through
`pyctl-agent resume --bucket gs://...`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes.gcp_compute import ComputeFake
from fakes.gcs_fake import GcsFake
from fakes.metadata_fake import MetadataFake
from recovery.test_end_to_end import wait_for

from pyctl.agent import gce
from pyctl.clouds.gcp import recovery
from pyctl.clouds.gcp.storage import GcsStore
from pyctl.core.checkpoint_store import newest_complete

from .conftest import BUCKET, PROJECT

AGENT = str(Path(sys.executable).parent / "pyctl-agent")
TRAINER = Path(__file__).resolve().parents[1] / "recovery" / "trainer.py"
JOB = "llm-train"
PREFIX = "team-a"


class Trainer:
    def __init__(self, root: Path, resume_from: str = "") -> None:
        self.checkpoints, self.progress, self.pid_file = (
            root / "checkpoints",
            root / "progress.json",
            root / "pid",
        )
        args = [
            "--checkpoint-dir",
            str(self.checkpoints),
            "--every",
            "1000",
            "--progress-file",
            str(self.progress),
        ]
        self.proc = subprocess.Popen(
            [sys.executable, str(TRAINER), *args, "--pid-file", str(self.pid_file)],
            env={**os.environ, "RESUME_FROM": resume_from},
        )
        wait_for(self.pid_file.exists, what="trainer start")
        wait_for(self.progress.exists, what="trainer progress")

    def state(self) -> dict[str, int]:
        return dict(json.loads(self.progress.read_text()))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_preemption_checkpoints_within_the_budget_and_resumes_after_the_restart(
    tmp_path: Path,
    metadata: MetadataFake,
    gcs: GcsFake,
    compute_fake: ComputeFake,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    compute_fake.add_instance("pyctl-staging-l4-0", spot=True, labels={"pyctl-capacity": "spot"})
    trainer = Trainer(tmp_path / "node1")
    processes.append(trainer.proc)
    agent = subprocess.Popen(
        [
            AGENT,
            "watch",
            "--cloud",
            "gcp",
            "--job",
            JOB,
            "--checkpoint-dir",
            str(trainer.checkpoints),
            "--bucket",
            f"gs://{BUCKET}",
            "--prefix",
            PREFIX,
            "--pid-file",
            str(trainer.pid_file),
            "--poll-interval",
            "0.5",
        ]
    )
    processes.append(agent)
    wait_for(lambda: len(metadata.requests) >= 2, what="the agent long-polling instance/preempted")
    store = GcsStore(BUCKET, PREFIX)
    assert newest_complete(store, JOB) is None

    # GCE preempts the VM: the value flips while the agent's wait_for_change request is open.
    at_notice = trainer.state()["step"]
    preempted_at = datetime.now(UTC)
    metadata.preempt()
    compute_fake.preempt("pyctl-staging-l4-0")

    trainer.proc.wait(timeout=30)  # checkpoint asked, uploaded, then the trainer drained
    assert trainer.proc.returncode == 0
    saved = newest_complete(store, JOB)
    assert saved is not None and saved.step >= at_notice  # no step done before the notice is lost
    # The final upload started by the trainer's deadline (notice + 15 s), and the manifest, written last,
    # was stored within the 25 s budget (the VM is powered off about 30 s after the notice).
    deadline = preempted_at + gce.POWER_OFF_AFTER - gce.UPLOAD_MARGIN
    assert saved.time <= deadline.replace(microsecond=0) + timedelta(seconds=1)
    stored = {k.rsplit("/", 1)[1]: o for k, o in gcs.buckets[BUCKET].items() if f"/step-{saved.step}/" in k}
    assert sorted(stored) == ["MANIFEST.json", "state.json", "weights.bin"]
    assert stored["MANIFEST.json"].updated - preempted_at <= gce.CHECKPOINT_BUDGET

    # Capacity is back: the recovery pass starts the preempted VM.
    [started] = recovery.recover_spot_vms(PROJECT)
    assert (started.name, started.outcome) == ("pyctl-staging-l4-0", "done")

    # On the restarted VM: resume from the newest complete checkpoint, verified.
    env_file = tmp_path / "resume.env"
    out = subprocess.run(
        [AGENT, "resume", "--job", JOB, "--bucket", f"gs://{BUCKET}", "--prefix", PREFIX, "--to",
         str(tmp_path / "restored"), "--env-file", str(env_file)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    path = out.stdout.strip()
    assert path == str(tmp_path / "restored" / f"step-{saved.step}")
    assert env_file.read_text() == f"RESUME_FROM={path}\n"
    second = Trainer(tmp_path / "node2", resume_from=path)
    processes.append(second.proc)
    assert second.state()["start"] == saved.step
