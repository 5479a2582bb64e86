"""`pyctl-agent resume`: fetch the newest complete checkpoint for the training unit to start from."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pyctl.core.checkpoint_store import ChecksumError, complete_checkpoints, download_checkpoint
from pyctl.core.object_store import ObjectStore

log = logging.getLogger("pyctl.agent.resume")


def resume(store: ObjectStore, *, job: str, to_dir: Path) -> Path | None:
    """Download and verify the newest complete checkpoint into `to_dir`; None when the job has none.

    A checkpoint whose files fail verification is skipped for the next older complete one.
    """
    for manifest in complete_checkpoints(store, job):
        try:
            return download_checkpoint(store, manifest, to_dir)
        except ChecksumError as exc:
            log.warning("%s; trying the next older checkpoint", exc)
    return None


def write_env_file(env_file: Path, resume_from: Path | None) -> None:
    """`RESUME_FROM=<path>` for a systemd EnvironmentFile; an empty file when there is nothing to resume,
    so a stale path from an earlier boot is never used. Written atomically.
    """
    env_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = env_file.with_name(env_file.name + ".tmp")
    tmp.write_text(f"RESUME_FROM={resume_from}\n" if resume_from is not None else "")
    os.replace(tmp, env_file)
