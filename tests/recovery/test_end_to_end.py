"""End to end on this machine: a tiny trainer under `pyctl-agent watch`, a local IMDS issuing the notice,
moto S3 holding the checkpoints, the recovery handler launching a replacement in moto EC2, and a second
trainer resuming through `pyctl-agent resume`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pyctl.clouds.aws.recovery import Recovery
from pyctl.clouds.aws.storage import S3Store
from pyctl.core.checkpoint_store import complete_checkpoints, newest_complete

from .conftest import TRAINER, AwsWorld, ImdsState, load_event

AGENT = str(Path(sys.executable).parent / "pyctl-agent")
JOB = "llm-train"
PREFIX = "team-a"


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Node:
    """One simulated GPU node: a trainer process and the agent watching it."""

    def __init__(self, root: Path, every: int, resume_from: str = "") -> None:
        self.root = root
        self.checkpoints = root / "checkpoints"
        self.progress = root / "progress.json"
        self.pid_file = root / "trainer.pid"
        self.every = every
        env = {**os.environ, "RESUME_FROM": resume_from}
        self.trainer = subprocess.Popen(
            [
                sys.executable,
                str(TRAINER),
                "--checkpoint-dir",
                str(self.checkpoints),
                "--every",
                str(every),
                "--progress-file",
                str(self.progress),
                "--pid-file",
                str(self.pid_file),
            ],
            env=env,
        )
        self.agent: subprocess.Popen[bytes] | None = None
        wait_for(self.pid_file.exists, what="trainer start")

    def watch(self, upload_margin: float = 1.0) -> None:
        self.agent = subprocess.Popen(
            [
                AGENT,
                "--log-level",
                "DEBUG",
                "watch",
                "--job",
                JOB,
                "--checkpoint-dir",
                str(self.checkpoints),
                "--bucket",
                "ckpt",
                "--prefix",
                PREFIX,
                "--pid-file",
                str(self.pid_file),
                "--poll-interval",
                "0.1",
                "--upload-margin",
                str(upload_margin),
            ],
        )

    def step(self) -> int:
        return int(json.loads(self.progress.read_text())["step"])

    def start(self) -> int:
        return int(json.loads(self.progress.read_text())["start"])

    def stop(self) -> None:
        for proc in (self.trainer, self.agent):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def resume_on_new_node(tmp_path: Path) -> tuple[str, Path]:
    env_file = tmp_path / "resume.env"
    out = subprocess.run(
        [
            AGENT,
            "resume",
            "--job",
            JOB,
            "--bucket",
            "ckpt",
            "--prefix",
            PREFIX,
            "--to",
            str(tmp_path / "restored"),
            "--env-file",
            str(env_file),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip(), env_file


@pytest.fixture
def nodes() -> Any:
    started: list[Node] = []

    def make(root: Path, every: int, resume_from: str = "") -> Node:
        node = Node(root, every, resume_from)
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


def test_notice_checkpoint_loses_no_step_and_resumes_on_a_replacement(
    aws: AwsWorld, imds: tuple[str, ImdsState], nodes: Any, tmp_path: Path
) -> None:
    _, state = imds
    instance_id = aws.launch_job_instance(subnet=next(iter(aws.subnets)))
    node = nodes(tmp_path / "node1", every=1000)  # periodic saves far apart: only the notice can save us
    (node.checkpoints / "step-0").mkdir(parents=True)
    (node.checkpoints / "step-0" / "state.json").write_text('{"step": 0}')
    (node.checkpoints / "step-0" / "COMPLETE").write_text("")
    node.watch()
    # Continuous upload: the existing complete checkpoint goes up before any notice.
    wait_for(lambda: newest_complete(S3Store("ckpt", PREFIX), JOB), what="continuous upload of step-0")

    at_notice = node.step()
    notice_time = datetime.now(UTC) + timedelta(seconds=4)
    state.instance_action = {"action": "terminate", "time": notice_time.strftime("%Y-%m-%dT%H:%M:%SZ")}

    # The agent signals, waits for the trainer's checkpoint, uploads it with its manifest, then drains.
    node.trainer.wait(timeout=15)
    assert node.trainer.returncode == 0
    saved = wait_for(
        lambda: (m := newest_complete(S3Store("ckpt", PREFIX), JOB)) and m.step > 0 and m,
        what="notice checkpoint",
    )
    keys = [
        o["Key"]
        for o in aws.s3.list_objects_v2(
            Bucket="ckpt", Prefix=f"{PREFIX}/checkpoints/{JOB}/step-{saved.step}/"
        )["Contents"]
    ]
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == ["MANIFEST.json", "state.json", "weights.bin"]
    assert saved.step >= at_notice  # every step done before the notice is in the checkpoint
    assert saved.time <= notice_time

    # The recovery Lambda gets the real interruption event: it records and launches a replacement.
    warning = load_event(
        "spot_interruption_warning", instance_id, time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    result = Recovery(aws.config(), aws.ec2, aws.dynamodb, aws.s3).handle(warning)
    assert result["action"] == "record-interruption"
    assert result["checkpoint_step"] == saved.step
    replacement = next(i for i in aws.job_instances() if i["InstanceId"] == result["replacement"])
    assert replacement["Placement"]["AvailabilityZone"] != aws.subnets[next(iter(aws.subnets))]
    assert replacement["InstanceLifecycle"] == "spot"

    # The replacement node resumes exactly where the notice checkpoint left off.
    path, env_file = resume_on_new_node(tmp_path)
    assert path == str(tmp_path / "restored" / f"step-{saved.step}")
    assert env_file.read_text() == f"RESUME_FROM={path}\n"
    second = nodes(tmp_path / "node2", every=1000, resume_from=path)
    wait_for(lambda: second.progress.exists(), what="second trainer progress")
    steps_lost = at_notice - second.start()
    assert steps_lost <= 0, f"{steps_lost} steps lost despite the notice"


def test_without_notice_at_most_n_steps_are_lost(
    aws: AwsWorld, imds: Any, nodes: Any, tmp_path: Path
) -> None:
    every = 20
    node = nodes(tmp_path / "node1", every=every)
    node.watch()
    wait_for(
        lambda: (m := newest_complete(S3Store("ckpt", PREFIX), JOB)) and m.step >= 2 * every,
        what="two uploads",
    )
    node.trainer.send_signal(signal.SIGKILL)  # the node is lost with no warning
    node.trainer.wait(timeout=10)
    reached = node.step()
    newest_local = max(int(p.name[5:]) for p in node.checkpoints.glob("step-*") if (p / "COMPLETE").exists())
    wait_for(
        lambda: newest_complete(S3Store("ckpt", PREFIX), JOB).step == newest_local, what="agent catching up"
    )

    path, _ = resume_on_new_node(tmp_path)
    second = nodes(tmp_path / "node2", every=every, resume_from=path)
    wait_for(lambda: second.progress.exists(), what="second trainer progress")
    assert 0 <= reached - second.start() <= every


def test_an_upload_killed_midway_is_never_resumed(aws: AwsWorld, tmp_path: Path) -> None:
    from pyctl.core.checkpoint_store import upload_checkpoint

    old = tmp_path / "local" / "step-10"
    old.mkdir(parents=True)
    (old / "state.json").write_text('{"step": 10}')
    upload_checkpoint(S3Store("ckpt", PREFIX), JOB, 10, old, now=datetime.now(UTC))

    big = tmp_path / "local" / "step-20"
    (big / "shards").mkdir(parents=True)
    (big / "state.json").write_text('{"step": 20}')
    for i in range(400):
        (big / "shards" / f"{i:04d}.bin").write_bytes(os.urandom(1024))
    (big / "COMPLETE").write_text("")
    code = (
        "import sys; from datetime import UTC, datetime; from pathlib import Path;"
        "from pyctl.clouds.aws.storage import S3Store;"
        "from pyctl.core.checkpoint_store import upload_checkpoint;"
        f"upload_checkpoint(S3Store('ckpt', {PREFIX!r}), {JOB!r}, 20, Path({str(big)!r}), now=datetime.now(UTC))"
    )
    uploader = subprocess.Popen([sys.executable, "-c", code])
    step20 = f"{PREFIX}/checkpoints/{JOB}/step-20/"
    wait_for(
        lambda: aws.s3.list_objects_v2(Bucket="ckpt", Prefix=step20).get("KeyCount", 0) > 0, what="first part"
    )
    uploader.kill()
    uploader.wait(timeout=10)
    stored = [o["Key"] for o in aws.s3.list_objects_v2(Bucket="ckpt", Prefix=step20).get("Contents", [])]
    assert 0 < len(stored) < 401 and not any(k.endswith("MANIFEST.json") for k in stored)

    assert [m.step for m in complete_checkpoints(S3Store("ckpt", PREFIX), JOB)] == [10]
    path, _ = resume_on_new_node(tmp_path)
    assert path.endswith("/step-10")
