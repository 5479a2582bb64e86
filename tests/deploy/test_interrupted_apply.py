"""An interrupted `pyctl up` on a real process running real Terraform core, with the S3 state and its
lock file on moto: what is left behind is explained by the next command, and a re-plan shows the truth.

The fixture env gets a chain of steps (terraform_data, each with a local-exec `sleep`, each depending on
the one before), so an apply is in flight for a few seconds and the tests interrupt it between steps:
- SIGINT to pyctl: forwarded to terraform, which stops gracefully; the state has the finished steps, the
  lock is released, pyctl exits 130 saying so, and a re-plan creates the rest.
- SIGINT, then SIGKILL of pyctl once it has forwarded the interrupt: terraform (its own process group)
  still finishes its graceful stop; same outcome.
- SIGINT, then SIGKILL of pyctl and terraform (a CI runner cancelling the job tree): the lock stays; the
  next command names its holder, when and the lock ID, and `pyctl force-unlock` releases it.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from pyctl.errors import PyctlError
from pyctl.terraform import resolve_executable

from .conftest import STATE_BUCKET, FixtureEnv

STEPS = 8
REPO = Path(__file__).resolve().parents[2]
STATE_KEY = "wf-test/terraform.tfstate"


def _add_steps(env: FixtureEnv) -> None:
    blocks = []
    for i in range(STEPS):
        depends = f"\n  depends_on = [terraform_data.step{i - 1}]" if i else ""
        blocks.append(
            f'resource "terraform_data" "step{i}" {{\n  input = {i}{depends}\n'
            '  provisioner "local-exec" {\n    command = "sleep 0.7"\n  }\n}\n'
        )
    (env.dir / "steps.tf").write_text("\n".join(blocks))


def _start_up(env: FixtureEnv) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pyctl.cli", "up", "--env", str(env.dir), "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _wait_for(proc: subprocess.Popen[str], marker: str, seen: list[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            return
    raise AssertionError(f"pyctl ended before {marker!r}:\n{''.join(seen)}")


def _terraform_child(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _finish(proc: subprocess.Popen[str], seen: list[str]) -> tuple[int, list[str]]:
    _, rest = proc.communicate(timeout=60)
    lines = [line.rstrip("\n") for line in [*seen, *rest.splitlines(keepends=True)]]
    return proc.returncode, lines


def _state_steps() -> dict[str, str]:
    """step name -> status in the S3 state ("ok" or "tainted")."""
    state = json.loads(boto3.client("s3").get_object(Bucket=STATE_BUCKET, Key=STATE_KEY)["Body"].read())
    out = {}
    for res in state["resources"]:
        if res["name"].startswith("step"):
            (instance,) = res["instances"]
            out[res["name"]] = instance.get("status", "ok")
    return out


def _lock() -> dict[str, str] | None:
    s3 = boto3.client("s3")
    try:
        body = s3.get_object(Bucket=STATE_BUCKET, Key=f"{STATE_KEY}.tflock")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return dict(json.loads(body))


def _replan_actions(env: FixtureEnv, pyctl) -> dict[str, list[str]]:
    """The steps' actions in a fresh plan made by pyctl (and read back with terraform show -json)."""
    plan_file = env.dir / "after.tfplan"
    result = pyctl("plan", "--env", env.dir, "--out", plan_file)
    assert result.exit_code == 0, result.output
    shown = subprocess.run(
        [resolve_executable(), f"-chdir={env.dir}", "show", "-json", str(plan_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        rc["address"]: rc["change"]["actions"]
        for rc in json.loads(shown.stdout)["resource_changes"]
        if rc["address"].startswith("terraform_data.step")
    }


def _assert_replan_shows_the_state(env: FixtureEnv, pyctl, steps: dict[str, str]) -> None:
    actions = _replan_actions(env, pyctl)
    for i in range(STEPS):
        address = f"terraform_data.step{i}"
        status = steps.get(f"step{i}")
        if status == "ok":
            assert address not in actions or actions[address] == ["no-op"], (address, actions)
        elif status == "tainted":
            assert actions[address] == ["delete", "create"], (address, actions)
        else:
            assert actions[address] == ["create"], (address, actions)


@pytest.fixture
def slow_env(fixture_env: FixtureEnv, pyctl) -> FixtureEnv:
    _add_steps(fixture_env)
    assert pyctl("init", "--env", fixture_env.dir).exit_code == 0
    return fixture_env


def test_sigint_stops_terraform_gracefully_and_the_replan_creates_the_rest(slow_env, pyctl):
    proc = _start_up(slow_env)
    seen: list[str] = []
    _wait_for(proc, "terraform_data.step1: Creation complete", seen)
    proc.send_signal(signal.SIGINT)
    code, lines = _finish(proc, seen)

    assert code == 130, "\n".join(lines)
    assert any(line.startswith("pyctl: interrupted; asked terraform to stop") for line in lines)
    assert lines[-1] == (
        "error: terraform apply of env wf-test was interrupted and stopped gracefully (exit 1): it saved the "
        "state of what it finished and released the lock. See what is left: pyctl plan --env wf-test"
    )
    assert _lock() is None
    steps = _state_steps()
    assert steps["step0"] == steps["step1"] == "ok"
    assert len(steps) < STEPS  # stopped before the end: no new step started after the interrupt
    _assert_replan_shows_the_state(slow_env, pyctl, steps)


def test_sigkill_of_pyctl_after_sigint_still_lets_terraform_save_the_state(slow_env, pyctl):
    proc = _start_up(slow_env)
    seen: list[str] = []
    _wait_for(proc, "terraform_data.step1: Creation complete", seen)
    terraform = _terraform_child(proc.pid)
    proc.send_signal(signal.SIGINT)
    _wait_for(proc, "pyctl: interrupted; asked terraform to stop", seen)
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{terraform}").exists() and time.monotonic() < deadline:  # an orphan: not ours to wait
        time.sleep(0.1)

    assert not Path(f"/proc/{terraform}").exists(), "terraform did not stop"
    assert _lock() is None
    steps = _state_steps()
    assert steps["step0"] == steps["step1"] == "ok" and len(steps) < STEPS
    _assert_replan_shows_the_state(slow_env, pyctl, steps)


def test_sigkill_of_the_whole_run_leaves_a_lock_the_next_command_explains(slow_env, pyctl):
    proc = _start_up(slow_env)
    seen: list[str] = []
    _wait_for(proc, "terraform_data.step1: Creation complete", seen)
    terraform = _terraform_child(proc.pid)
    os.killpg(terraform, signal.SIGSTOP)  # so the forwarded interrupt cannot finish before the kill
    proc.send_signal(signal.SIGINT)
    _wait_for(proc, "pyctl: interrupted; asked terraform to stop", seen)
    os.killpg(terraform, signal.SIGKILL)  # a CI runner cancelling the job tree after its grace period
    proc.kill()
    proc.wait(timeout=10)

    lock = _lock()
    assert lock is not None and lock["Operation"] == "OperationTypeApply"
    with pytest.raises(PyctlError) as refused:
        pyctl("plan", "--env", slow_env.dir)
    assert refused.value.exit_code == 1
    day, clock = (
        lock["Created"][:10],
        lock["Created"][11:19],
    )  # terraform prints "2026-01-02 03:04:05.6 +0000 UTC"
    assert str(refused.value) == (
        f"state of env wf-test is locked by {getpass.getuser()}@{socket.gethostname()} (operation "
        f"OperationTypeApply, since {day} {clock}{lock['Created'][19:-1]} +0000 UTC, lock ID {lock['ID']}). If that "
        "run is still going, wait for it or retry with --lock-timeout=5m; if it died, release the lock: "
        f"pyctl force-unlock --env wf-test {lock['ID']}"
    )

    assert pyctl("force-unlock", "--env", slow_env.dir, lock["ID"]).exit_code == 0
    assert _lock() is None
    try:
        steps = _state_steps()
    except boto3.client("s3").exceptions.NoSuchKey:
        steps = {}  # killed before the first state write
    _assert_replan_shows_the_state(slow_env, pyctl, steps)
