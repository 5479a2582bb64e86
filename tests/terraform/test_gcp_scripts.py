"""The GCE node scripts, rendered by Terraform core exactly as gcp-gpu-pool renders them.

Startup: shellcheck-clean, the steps a pool kind needs, and the systemd units it writes (their command
lines are parsed by the real pyctl-agent CLI). Shutdown: run for real against the GCE metadata-server
fake and a stand-in trainer process (a Python program with the trainer's signal protocol).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes.metadata_fake import MetadataFake

from .gcp_eval import EvalTree, rendered_tfvars
from .tfconfig import REPO_ROOT, parse_file

SHELLCHECK = Path(sys.executable).with_name("shellcheck")
POOL_EXAMPLES = REPO_ROOT / "infra" / "modules" / "gcp-gpu-pool" / "examples"
BUCKET = "acme-staging-gpu-models-gcs"


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory, run_terraform) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("gcp-scripts")
    nvme = base / "nvme"
    tree = EvalTree(base / "tree", run_terraform)
    staging = rendered_tfvars("staging")
    (reserved_call,) = [b["pool"] for b in parse_file(POOL_EXAMPLES / "reserved-n1-t4" / "main.tf")["module"]]
    common = {"project": "p", "region": "us-central1", "subnetwork": "s", "nvme_path": str(nvme)}
    pools = {
        "spot": {
            **common,
            "name": "l4-overflow",
            "env": "staging",
            "pool": staging["gcp_pools"]["l4-overflow"],
            "model_cache": {"bucket": BUCKET, "key_prefix": "team-a/"},
            "model_version": staging["model_cache"]["models"][0]["version"],
        },
        "reserved": {
            **common,
            "name": reserved_call["name"],
            "env": "prod",
            "pool": reserved_call["pool"],
            "model_cache": {"bucket": "acme-prod-gpu-models-gcs"},
        },
    }
    fast_shutdown = (
        'templatefile("../infra/modules/gcp-gpu-pool-eval/templates/shutdown.sh.tftpl", '
        '{pool = "l4", job = "job-1", nvme_path = "/unused", budget_seconds = 3, upload_grace_seconds = 1})'
    )
    tree.write_root(pools, {}, {"fast_shutdown": fast_shutdown})
    out = tree.evaluate()
    rendered = {
        "spot_startup": out["spot"]["startup_script"],
        "spot_shutdown": out["spot"]["shutdown_script"],
        "reserved_startup": out["reserved"]["startup_script"],
        "fast_shutdown": out["fast_shutdown"],
    }
    files = {}
    for name, text in rendered.items():
        files[name] = base / f"{name}.sh"
        files[name].write_text(text)
    return {"text": rendered, "files": files, "base": base, "nvme": nvme}


def test_rendered_scripts_are_shellcheck_clean(scripts: dict[str, Any]) -> None:
    files = [str(f) for f in scripts["files"].values()]
    result = subprocess.run(
        [str(SHELLCHECK), "-s", "bash", *files], capture_output=True, text=True, check=False
    )  # noqa: S603
    assert result.returncode == 0, result.stdout
    for f in files:
        assert subprocess.run(["bash", "-n", f], check=False).returncode == 0  # noqa: S603, S607


def _steps(script: str) -> list[str]:
    body = script.split("\nmain() {\n", 1)[1].split("\n}\n", 1)[0]
    return [line.strip() for line in body.splitlines() if not line.strip().startswith("log ")]


def test_spot_node_startup_mounts_monitors_fetches_and_watches(scripts: dict[str, Any]) -> None:
    text = scripts["text"]["spot_startup"]
    # The watcher and resume units are installed before the model fetch starts (and do not wait for it).
    assert _steps(text) == [
        'local job=""',
        "check_python",
        'job="$(read_job)"',
        "install_agent",
        'write_agent_env "$job"',
        "install_local_ssd_unit",
        'start_preemption_watcher "$job"',
        "fetch_model",
        "configure_ops_agent",
    ]
    assert 'systemctl enable --now --no-block "$name"' in text
    assert "readonly MODEL_VERSION='2024-07-18'" in text and "readonly KEY_PREFIX='team-a/'" in text


def test_reserved_node_without_model_skips_fetch_and_watcher(scripts: dict[str, Any]) -> None:
    assert _steps(scripts["text"]["reserved_startup"]) == [
        'local job=""',
        "check_python",
        "install_agent",
        'write_agent_env "$job"',
        "install_local_ssd_unit",
        "configure_ops_agent",
    ]
    assert "readonly PYCTL_CAPACITY='reserved'" in scripts["text"]["reserved_startup"]


def test_startup_script_carries_names_not_secrets(scripts: dict[str, Any]) -> None:
    for name in ("spot_startup", "reserved_startup"):
        text = scripts["text"][name]
        # (`token="$(metadata_get ...)"`: the node's access token, read at boot from the metadata server)
        assert not re.search(r"(?i)(secret|password|token)\s*=\s*(?!\"\$\(metadata_get )\S", text)
        assert not re.search(r"-----BEGIN|AKIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,}", text)


def _units(scripts: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """Run the startup script's unit-writing steps with `install_unit` writing into tmp_path."""
    units = tmp_path / "units"
    units.mkdir()
    harness = f"""
source <(sed -e '/^exec > >(tee/d' -e '/^main$/d' {shlex.quote(str(scripts["files"]["spot_startup"]))})
install_unit() {{ cat >"{units}/$1"; }}
fetch_model
start_preemption_watcher l4-overflow
"""
    result = subprocess.run(["bash", "-c", harness], capture_output=True, text=True, check=False)  # noqa: S603, S607
    assert result.returncode == 0, result.stdout + result.stderr
    return {p.name: p.read_text() for p in units.iterdir()}


def _exec_start(unit: str) -> list[str]:
    (line,) = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def test_units_run_pyctl_agent_with_options_it_accepts(scripts: dict[str, Any], tmp_path: Path) -> None:
    from pyctl.agent.cli import main as agent

    units = _units(scripts, tmp_path)
    assert set(units) == {"pyctl-fetch-model.service", "pyctl-spot-watch.service", "pyctl-resume.service"}
    fetch = _exec_start(units["pyctl-fetch-model.service"])
    watch = _exec_start(units["pyctl-spot-watch.service"])
    resume = _exec_start(units["pyctl-resume.service"])
    assert fetch[:2] == ["/usr/local/bin/pyctl-agent", "fetch-model"] and watch[1] == "watch"
    assert resume[1] == "resume"
    nvme = scripts["nvme"]
    for argv in (fetch, watch, resume):  # click parses them exactly as the node would (nothing is run)
        command = agent.commands[argv[1]]
        ctx = command.make_context(argv[1], argv[2:])
        assert ctx.params["bucket"] == f"gs://{BUCKET}" and ctx.params["prefix"] == "team-a/"
    fetch_params = agent.commands["fetch-model"].make_context("fetch-model", fetch[2:]).params
    assert fetch_params["name"] == "llama-3-8b-instruct" and fetch_params["version"] == "2024-07-18"
    assert fetch_params["dest"] == nvme / "models" / "llama-3-8b-instruct" / "2024-07-18"
    watch_params = agent.commands["watch"].make_context("watch", watch[2:]).params
    assert watch_params["job"] == "l4-overflow"
    assert watch_params["checkpoint_dir"] == nvme / "checkpoints" / "l4-overflow"
    assert str(watch_params["pid_file"]) == "/run/pyctl/trainer.pid"
    resume_params = agent.commands["resume"].make_context("resume", resume[2:]).params
    assert resume_params["job"] == "l4-overflow" and str(resume_params["env_file"]) == "/run/pyctl/resume.env"
    # Stopped after the shutdown script on shutdown, so a final upload is not cut short.
    assert "Before=google-shutdown-scripts.service" in units["pyctl-spot-watch.service"]


def test_spot_shutdown_script_keeps_within_the_preemption_window(scripts: dict[str, Any]) -> None:
    text = scripts["text"]["spot_shutdown"]
    budget = int(re.search(r"^readonly BUDGET_SECONDS=(\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert 5 <= budget <= 28
    # Best effort: a failing step must not skip the rest.
    assert re.search(r"^set -uo pipefail$", text, re.M) and not re.search(r"^set -\w*e", text, re.M)


# --- the shutdown script, run -----------------------------------------------------------------------------

TRAINER = """
import os, pathlib, signal, sys, time
pid_file, checkpoints, log, mode = sys.argv[1:5]
steps = [0]

def record(name):
    with open(log, "a") as fh:
        fh.write(name + "\\n")

def checkpoint(signum, frame):
    record("USR1")
    steps[0] += 1
    step = pathlib.Path(checkpoints) / f"step-{steps[0]}"
    step.mkdir(parents=True)
    (step / "model.safetensors").write_bytes(b"weights")
    (step / "COMPLETE").write_text("")

def stop(signum, frame):
    record("TERM")
    if mode != "stubborn":
        sys.exit(0)

signal.signal(signal.SIGUSR1, checkpoint)
signal.signal(signal.SIGTERM, stop)
pathlib.Path(pid_file).write_text(str(os.getpid()))
while True:
    time.sleep(0.05)
"""


@dataclass
class Node:
    """A node's shutdown moment: metadata server, trainer, agent env file, and a `systemctl` stand-in."""

    dir: Path
    metadata: MetadataFake
    trainer: subprocess.Popen[bytes] | None = None

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints" / "job-1"

    @property
    def signals(self) -> list[str]:
        log = self.dir / "signals.log"
        return log.read_text().split() if log.exists() else []

    def start_trainer(self, mode: str = "normal") -> None:
        pid_file = self.dir / "trainer.pid"
        program = self.dir / "trainer.py"
        program.write_text(TRAINER)
        args = [
            sys.executable,
            str(program),
            str(pid_file),
            str(self.checkpoints),
            str(self.dir / "signals.log"),
            mode,
        ]
        self.trainer = subprocess.Popen(args)  # noqa: S603
        # Reap it as soon as it exits, as its real parent would (a zombie still answers `kill -0`).
        threading.Thread(target=self.trainer.wait, daemon=True).start()
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text():
                return
            time.sleep(0.05)
        raise AssertionError("the stand-in trainer did not start")

    def watcher(self, active: bool) -> None:
        stub = self.dir / "bin" / "systemctl"
        stub.parent.mkdir(exist_ok=True)
        stub.write_text(f"#!/bin/sh\nexit {0 if active else 3}\n")  # `is-active`: 0 active, 3 inactive
        stub.chmod(0o755)

    def shutdown(self, script: Path) -> subprocess.Popen[str]:
        (self.dir / "agent.env").write_text(
            f"PYCTL_TRAINER_PID_FILE={self.dir / 'trainer.pid'}\n"
            f"PYCTL_CHECKPOINT_DIR={self.dir / 'checkpoints'}\nPYCTL_JOB=job-1\n"
        )
        env = {
            **os.environ,
            "PATH": f"{self.dir / 'bin'}:{os.environ['PATH']}",
            "PYCTL_AGENT_ENV": str(self.dir / "agent.env"),
            "GCE_METADATA_HOST": self.metadata.host,
        }
        return subprocess.Popen(  # noqa: S603
            ["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    metadata = MetadataFake()
    server = metadata.serve()
    n = Node(tmp_path, metadata)
    n.watcher(active=False)
    try:
        yield n
    finally:
        if n.trainer is not None and n.trainer.poll() is None:
            n.trainer.kill()
            n.trainer.wait()
        server.shutdown()
        server.server_close()


def _finish(process: subprocess.Popen[str]) -> str:
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return out


def test_planned_stop_checkpoints_then_stops_the_trainer(scripts: dict[str, Any], node: Node) -> None:
    node.start_trainer()
    out = _finish(node.shutdown(scripts["files"]["fast_shutdown"]))
    assert node.signals == ["USR1", "TERM"]
    assert (node.checkpoints / "step-1" / "COMPLETE").exists()
    assert "new checkpoint complete" in out and "did not stop in time" not in out
    assert node.trainer is not None and node.trainer.wait(timeout=10) == 0
    assert "leaving pyctl-agent watch" not in out  # no watcher: nothing to wait for


def test_planned_stop_leaves_the_watcher_time_to_upload(scripts: dict[str, Any], node: Node) -> None:
    node.watcher(active=True)
    node.start_trainer()
    out = _finish(node.shutdown(scripts["files"]["fast_shutdown"]))
    assert node.signals == ["USR1", "TERM"]
    assert re.search(r"leaving pyctl-agent watch [01] s to upload", out), out


def test_preempted_node_lets_the_watcher_checkpoint_and_drain(scripts: dict[str, Any], node: Node) -> None:
    node.metadata.preempt()
    node.watcher(active=True)
    node.start_trainer()
    process = node.shutdown(scripts["files"]["fast_shutdown"])
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "holding shutdown" in line:
            break
    assert any("preempted: pyctl-agent watch is checkpointing" in s for s in seen), seen
    assert node.trainer is not None
    node.trainer.send_signal(signal.SIGTERM)  # what the watcher does once the final upload is done
    assert node.trainer.wait(timeout=10) == 0
    out = "".join(seen) + _finish(process)
    assert "drained after the final upload" in out
    assert node.signals == ["TERM"]  # the script itself never asked for a second checkpoint


def test_a_stuck_trainer_cannot_hold_the_shutdown_past_the_budget(
    scripts: dict[str, Any], node: Node
) -> None:
    node.start_trainer(mode="stubborn")
    out = _finish(node.shutdown(scripts["files"]["fast_shutdown"]))
    assert "did not stop in time" in out
    assert node.signals == ["USR1", "TERM"]
    assert node.trainer is not None and node.trainer.poll() is None  # still running: the VM powers off anyway


def test_no_trainer_means_nothing_to_do(scripts: dict[str, Any], node: Node) -> None:
    out = _finish(node.shutdown(scripts["files"]["fast_shutdown"]))
    assert "no trainer running" in out
    assert node.metadata.requests == []  # returns before asking the metadata server
