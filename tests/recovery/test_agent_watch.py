"""The IMDSv2 client and the watch loop against a local IMDS server and moto S3."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyctl.agent.cli import main
from pyctl.agent.imds import Imds, ImdsError
from pyctl.agent.watch import Trainer, WatchConfig, Watcher
from pyctl.clouds.aws.storage import S3Store
from pyctl.core.checkpoint import NoticeKind
from pyctl.core.checkpoint_store import newest_complete

from .conftest import AwsWorld, ImdsState


def test_imds_v2_token_then_notices(imds: tuple[str, ImdsState]) -> None:
    url, state = imds
    client = Imds()  # from AWS_EC2_METADATA_SERVICE_ENDPOINT
    assert client.endpoint == url
    assert client.interruption_notice() is None
    assert client.rebalance_recommendation() is None
    state.instance_action = {"action": "terminate", "time": "2026-11-22T08:02:00Z"}
    state.rebalance = {"noticeTime": "2026-11-22T07:58:00Z"}
    notice = client.interruption_notice()
    assert notice is not None and notice.kind is NoticeKind.INTERRUPTION and notice.action == "terminate"
    assert notice.time == datetime(2026, 11, 22, 8, 2, tzinfo=UTC)
    rebalance = client.rebalance_recommendation()
    assert rebalance is not None and rebalance.kind is NoticeKind.REBALANCE
    assert len(state.tokens) == 1  # one token for all reads


def test_an_expired_token_is_replaced_once(imds: tuple[str, ImdsState]) -> None:
    _, state = imds
    client = Imds()
    client.interruption_notice()
    state.tokens.clear()  # IMDS forgot the token (expiry, instance stop/start)
    assert client.interruption_notice() is None
    assert state.unauthorised == 1 and len(state.tokens) == 1


def test_unreachable_imds_is_an_imds_error() -> None:
    with pytest.raises(ImdsError, match="unreachable"):
        Imds("http://127.0.0.1:9", timeout=0.5).interruption_notice()
    with pytest.raises(ImdsError, match="http"):
        Imds("file:///etc/passwd")


def _complete_step(root: Path, step: int) -> None:
    (root / f"step-{step}").mkdir(parents=True)
    (root / f"step-{step}" / "state.json").write_text(f'{{"step": {step}}}')
    (root / f"step-{step}" / "COMPLETE").write_text("")


def test_the_daemon_survives_failing_ticks(aws: AwsWorld, tmp_path: Path) -> None:
    """IMDS down and a bucket that does not exist yet: ticks fail, the loop goes on and catches up."""
    _complete_step(tmp_path, 5)
    config = WatchConfig(job="llm", checkpoint_dir=tmp_path, poll_interval=0.05)
    watcher = Watcher(config, Imds("http://127.0.0.1:9", timeout=0.2), S3Store("created-later"))
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    try:
        time.sleep(0.5)
        assert thread.is_alive() and watcher.uploaded == set()
        aws.s3.create_bucket(Bucket="created-later")
        deadline = time.monotonic() + 10
        while watcher.uploaded != {5} and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert watcher.uploaded == {5}
    found = newest_complete(S3Store("created-later"), "llm")
    assert found is not None and found.step == 5


def test_rebalance_asks_for_a_checkpoint_and_never_drains(
    aws: AwsWorld, imds: tuple[str, ImdsState], tmp_path: Path
) -> None:
    _, state = imds
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    pid_file = tmp_path / "trainer.pid"
    pid_file.write_text(str(os.getpid()))  # this test process plays the trainer
    try:
        config = WatchConfig(
            job="llm",
            checkpoint_dir=tmp_path / "ckpt",
            trainer=Trainer(pid_file=pid_file),
            poll_interval=0.05,
        )
        watcher = Watcher(config, Imds(), S3Store("ckpt"))
        state.rebalance = {"noticeTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        watcher.tick()
        watcher.tick()  # the same recommendation is acted on once
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert received == [signal.SIGUSR1]  # no SIGTERM: this process is still running this test


def test_a_missed_deadline_still_uploads_the_newest_checkpoint(
    aws: AwsWorld, imds: tuple[str, ImdsState], tmp_path: Path
) -> None:
    _, state = imds
    _complete_step(tmp_path, 40)
    config = WatchConfig(
        job="llm",
        checkpoint_dir=tmp_path,
        trainer=Trainer(pid_file=tmp_path / "no-trainer.pid"),
        drain_signal=None,
        upload_margin=timedelta(seconds=30),
    )
    state.instance_action = {"action": "terminate", "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    Watcher(config, Imds(), S3Store("ckpt")).tick()  # deadline already passed: no waiting
    found = newest_complete(S3Store("ckpt"), "llm")
    assert found is not None and found.step == 40


def test_watch_options_are_checked() -> None:
    runner = CliRunner()
    both = runner.invoke(
        main,
        [
            "watch",
            "--job",
            "j",
            "--checkpoint-dir",
            "d",
            "--bucket",
            "b",
            "--pid-file",
            "p",
            "--process-name",
            "n",
        ],
    )
    assert both.exit_code == 2 and "not both" in both.output
    slow = runner.invoke(
        main, ["watch", "--job", "j", "--checkpoint-dir", "d", "--bucket", "b", "--poll-interval", "5"]
    )
    assert slow.exit_code == 2 and "poll-interval" in slow.output
    bad = runner.invoke(
        main, ["watch", "--job", "j", "--checkpoint-dir", "d", "--bucket", "b", "--signal", "SIGNOPE"]
    )
    assert bad.exit_code == 2 and "SIGNOPE" in bad.output


def test_a_malformed_notice_is_an_imds_error_and_uploads_go_on(
    aws: AwsWorld, imds: tuple[str, ImdsState], tmp_path: Path
) -> None:
    _, state = imds
    state.instance_action = {"action": "terminate", "time": "soon"}
    with pytest.raises(ImdsError, match="not a documented notice"):
        Imds().interruption_notice()
    _complete_step(tmp_path, 3)
    watcher = Watcher(WatchConfig(job="llm", checkpoint_dir=tmp_path), Imds(), S3Store("ckpt"))
    watcher.tick()
    assert watcher.uploaded == {3}


def test_the_trainer_is_found_by_process_name(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while sleeper.pid not in Trainer(process_name="sleep").pids() and time.monotonic() < deadline:
            time.sleep(0.02)  # until the child has exec'd (before that it is still named python)
        assert sleeper.pid in Trainer(process_name="sleep").pids()
        assert Trainer(process_name="no-such-trainer").pids() == []
        (tmp_path / "pid").write_text("not a pid")
        assert Trainer(pid_file=tmp_path / "pid").pids() == []
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_drain_waits_until_the_final_checkpoint_is_stored(
    aws: AwsWorld, imds: tuple[str, ImdsState], tmp_path: Path
) -> None:
    """S3 fails during the notice: the trainer is drained only once a later tick has uploaded."""
    _, state = imds
    trainer = subprocess.Popen(["sleep", "30"])
    pid_file = tmp_path / "trainer.pid"
    pid_file.write_text(str(trainer.pid))
    _complete_step(tmp_path / "ckpt", 8)
    config = WatchConfig(
        job="llm",
        checkpoint_dir=tmp_path / "ckpt",
        trainer=Trainer(pid_file=pid_file),
        checkpoint_signal=signal.SIGCONT,  # harmless for `sleep`; the drain (SIGTERM) is what we watch
        upload_margin=timedelta(seconds=60),
    )
    watcher = Watcher(config, Imds(), S3Store("not-yet"))
    state.instance_action = {"action": "terminate", "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        with pytest.raises(Exception, match="NoSuchBucket"):
            watcher.tick()
        assert trainer.poll() is None  # not drained: nothing is stored yet
        aws.s3.create_bucket(Bucket="not-yet")
        watcher.tick()
        assert trainer.wait(timeout=10) == -signal.SIGTERM
        assert watcher.uploaded == {8}
    finally:
        trainer.kill()
        trainer.wait()
