"""A held state lock (S3 native lockfile on moto) is reported with its holder and a way to recover."""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess

import boto3
import pytest

from pyctl.errors import PyctlError
from pyctl.terraform import resolve_executable

from .conftest import STATE_BUCKET


def _hold_lock(env_dir) -> subprocess.Popen:
    """A real terraform apply paused at its approval prompt, holding the state lock as it does."""
    holder = subprocess.Popen(
        [resolve_executable(), f"-chdir={env_dir}", "apply", "-no-color"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TF_INPUT": "1"},
    )
    seen = b""
    while b"Enter a value" not in seen:
        chunk = os.read(holder.stdout.fileno(), 4096)
        assert chunk, f"terraform apply ended before prompting: {seen.decode()}"
        seen += chunk
    return holder


def test_held_lock_names_its_holder_and_recovery(fixture_env, pyctl):
    pyctl("init", "--env", fixture_env.dir)
    holder = _hold_lock(fixture_env.dir)
    try:
        lock = json.loads(
            boto3.client("s3")
            .get_object(Bucket=STATE_BUCKET, Key="wf-test/terraform.tfstate.tflock")["Body"]
            .read()
        )
        with pytest.raises(PyctlError) as refused:
            pyctl("plan", "--env", fixture_env.dir)
        message = str(refused.value)
        assert f"state of env wf-test is locked by {getpass.getuser()}@{socket.gethostname()}" in message
        assert f"operation OperationTypeApply, since {lock['Created'][:10]}" in message
        assert f"pyctl force-unlock --env wf-test {lock['ID']}" in message
        assert refused.value.exit_code == 1
    finally:
        holder.kill()  # dies holding the lock, like a cancelled CI job
        holder.wait()

    with pytest.raises(PyctlError, match="is locked by"):
        pyctl("plan", "--env", fixture_env.dir)
    released = pyctl("force-unlock", "--env", fixture_env.dir, lock["ID"])
    assert released.exit_code == 0, released.output
    assert pyctl("plan", "--env", fixture_env.dir).exit_code == 0
