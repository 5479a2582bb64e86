"""`pyctl-agent watch`: the spot node daemon.

Every tick (2 s or faster): read the IMDS interruption notice and rebalance recommendation, act on a new
one, then upload the newest COMPLETE local checkpoint not yet in the bucket (continuous upload, so a
notice only has to carry the delta). On an interruption notice: signal the trainer, wait for its new checkpoint
until the deadline (notice time minus the upload margin), upload it with its manifest, then drain the
trainer. A rebalance recommendation only asks for an early checkpoint. Each tick's exceptions are
caught and logged, so one failure cannot kill the daemon.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from pyctl.agent.imds import ImdsError
from pyctl.core.checkpoint import (
    AgentAction,
    Notice,
    agent_action,
    complete_local_steps,
    next_upload,
    notice_deadline,
    step_dir_name,
)
from pyctl.core.checkpoint_store import apply_retention, newest_complete, upload_checkpoint
from pyctl.core.object_store import ObjectStore

log = logging.getLogger("pyctl.agent.watch")

MAX_POLL_INTERVAL = 2.0


@dataclass(frozen=True)
class Trainer:
    """How to find the training process: a pid file, or a process name (`/proc/<pid>/comm` or argv[0])."""

    pid_file: Path | None = None
    process_name: str | None = None

    def pids(self) -> list[int]:
        if self.pid_file is not None:
            try:
                return [int(self.pid_file.read_text().strip())]
            except (OSError, ValueError):
                return []
        if self.process_name is not None:
            return _pids_named(self.process_name)
        return []

    def send(self, sig: signal.Signals) -> list[int]:
        """Send `sig` to every matching process; return the pids signalled."""
        sent = []
        for pid in self.pids():
            try:
                os.kill(pid, sig)
                sent.append(pid)
            except ProcessLookupError:
                continue
        if not sent:
            log.warning("no trainer process found to send %s to", sig.name)
        return sent


def _pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if name in (comm, os.path.basename(argv0)):
            found.append(int(entry.name))
    return found


@dataclass
class WatchConfig:
    job: str
    checkpoint_dir: Path
    trainer: Trainer = field(default_factory=Trainer)
    checkpoint_signal: signal.Signals = signal.SIGUSR1
    drain_signal: signal.Signals | None = signal.SIGTERM
    poll_interval: float = MAX_POLL_INTERVAL
    upload_margin: timedelta = timedelta(seconds=30)
    keep_last: int = 3


class NoticeSource(Protocol):
    """IMDS on EC2 (`pyctl.agent.imds.Imds`), the metadata server on GCE (`pyctl.agent.gce.GceMetadata`)."""

    def interruption_notice(self) -> Notice | None: ...

    def rebalance_recommendation(self) -> Notice | None: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


class Watcher:
    def __init__(
        self,
        config: WatchConfig,
        imds: NoticeSource,
        store: ObjectStore,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.imds = imds
        self.store = store  # the bucket and prefix checkpoints go to: S3, or GCS on GCE
        self.clock = clock
        self.uploaded: set[int] = set()
        self.handled: list[Notice] = []
        self.drain_pending = False

    def seed_from_store(self) -> None:
        """After a restart, do not upload again what the bucket already holds."""
        newest = newest_complete(self.store, self.config.job)
        if newest is not None:
            self.uploaded.add(newest.step)

    def tick(self) -> None:
        for read in (self.imds.interruption_notice, self.imds.rebalance_recommendation):
            try:
                notice = read()
            except ImdsError as exc:
                log.warning("%s", exc)
                continue
            action = agent_action(notice, self.handled)
            if notice is None or action is AgentAction.NOTHING:
                continue
            self.handled.append(notice)
            log.info("%s notice for %s: %s", notice.kind.value, notice.time.isoformat(), action.value)
            if action is AgentAction.EARLY_CHECKPOINT:
                self.config.trainer.send(self.config.checkpoint_signal)
            else:
                self.final_checkpoint(notice)
        self.sync()
        self.drain()  # a final upload that failed in an earlier tick went up now

    def sync(self, *, retention: bool = True) -> int | None:
        """Upload the newest complete local checkpoint newer than anything uploaded; return its step."""
        c = self.config
        step = next_upload(complete_local_steps(c.checkpoint_dir), self.uploaded)
        if step is None:
            return None
        upload_checkpoint(self.store, c.job, step, c.checkpoint_dir / step_dir_name(step), now=self.clock())
        self.uploaded.add(step)
        log.info("checkpoint step %d of job %s uploaded", step, c.job)
        if retention:
            apply_retention(self.store, c.job, c.keep_last)
        return step

    def final_checkpoint(self, notice: Notice) -> None:
        c = self.config
        deadline = notice_deadline(notice.time, c.upload_margin)
        baseline = max(complete_local_steps(c.checkpoint_dir), default=-1)
        c.trainer.send(c.checkpoint_signal)
        while self.clock() < deadline:
            if max(complete_local_steps(c.checkpoint_dir), default=-1) > baseline:
                break
            time.sleep(min(0.05, c.poll_interval))
        else:
            log.warning(
                "no new checkpoint before the deadline %s: uploading the newest one", deadline.isoformat()
            )
        self.drain_pending = True
        step = self.sync(retention=False)
        log.info("final checkpoint: step %s uploaded", step)
        self.drain()

    def drain(self) -> None:
        """After the final checkpoint is stored, stop the trainer: later steps could not be saved."""
        if self.drain_pending and self.config.drain_signal is not None:
            self.config.trainer.send(self.config.drain_signal)
        self.drain_pending = False

    def run(self, stop: threading.Event) -> None:
        try:
            self.seed_from_store()
        except Exception:
            log.exception("could not read the checkpoints already stored; continuing")
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:
                log.exception("watch tick failed; retrying next tick")
            stop.wait(max(0.0, self.config.poll_interval - (time.monotonic() - started)))
