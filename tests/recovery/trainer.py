"""A tiny trainer honouring the pyctl checkpoint contract (used by the end-to-end tests).

Counts steps; saves `<dir>/step-<N>/` (state.json + weights.bin, COMPLETE last) every N steps and after
the current step when SIGUSR1 arrives; stops after the current step on SIGTERM; starts from RESUME_FROM.
Writes its progress (steps done) to --progress-file after every step.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--checkpoint-dir", type=Path, required=True)
parser.add_argument("--every", type=int, required=True)
parser.add_argument("--step-seconds", type=float, default=0.01)
parser.add_argument("--progress-file", type=Path, required=True)
parser.add_argument("--pid-file", type=Path, required=True)
parser.add_argument("--weights-bytes", type=int, default=4096)
args = parser.parse_args()

save_requested = False
stop_requested = False


def on_usr1(signum, frame):
    global save_requested
    save_requested = True


def on_term(signum, frame):
    global stop_requested
    stop_requested = True


signal.signal(signal.SIGUSR1, on_usr1)
signal.signal(signal.SIGTERM, on_term)

step = 0
resume_from = os.environ.get("RESUME_FROM", "")
if resume_from:
    step = json.loads((Path(resume_from) / "state.json").read_text())["step"]
(args.progress_file.parent).mkdir(parents=True, exist_ok=True)
start = step
args.progress_file.write_text(json.dumps({"step": step, "start": start}))
args.pid_file.write_text(str(os.getpid()))


def save(n: int) -> None:
    target = args.checkpoint_dir / f"step-{n}"
    target.mkdir(parents=True, exist_ok=True)
    (target / "state.json").write_text(json.dumps({"step": n}))
    (target / "weights.bin").write_bytes(n.to_bytes(8, "big") * (args.weights_bytes // 8))
    (target / "COMPLETE").write_text("")


while not stop_requested:
    time.sleep(args.step_seconds)  # one training step
    step += 1
    tmp = args.progress_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"step": step, "start": start}))
    os.replace(tmp, args.progress_file)
    if save_requested or step % args.every == 0:
        save_requested = False
        save(step)
