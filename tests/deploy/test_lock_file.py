"""Provider lock files: `pyctl init` records hashes for every platform the team uses (here from a local
filesystem mirror, on the real Terraform core), and CI refuses an env without a committed lock file."""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

import pytest

from pyctl import deploy
from pyctl.deploy import EnvTarget
from pyctl.terraform import LOCK_FILE, Terraform

# Not a real provider: a tiny package only for hashing (Terraform never runs it in init or providers lock).
PROVIDER = ("example.com", "pyctl-test", "dummy", "1.0.0")
PLATFORMS = ("linux_amd64", "darwin_arm64")


def test_ci_refuses_an_env_without_a_lock_file_and_reports_it_on_the_pull_request(
    fixture_env, pyctl, tmp_path
):
    from pyctl.errors import PyctlError

    report = tmp_path / "comment.md"
    with pytest.raises(PyctlError) as refused:
        pyctl("plan", "--env", fixture_env.dir, "--require-lock-file", "--summary-md", report)
    message = str(refused.value)
    assert refused.value.exit_code == 1
    assert re.fullmatch(
        r"env wf-test has no \.terraform\.lock\.hcl \(.*envs/wf-test/\.terraform\.lock\.hcl\): run "
        r"`pyctl init --env wf-test` where the providers can be downloaded and commit the lock file it writes",
        message,
    )
    comment = report.read_text()
    assert "failed while checking the committed provider lock file" in comment and message in comment
    assert not (fixture_env.dir / ".terraform").exists()  # refused before terraform ran


def test_with_a_committed_lock_file_ci_plans_and_leaves_it_unchanged(fixture_env, pyctl):
    lock = fixture_env.dir / LOCK_FILE
    lock.write_text('# This file is maintained automatically by "terraform init".\n')
    before = lock.read_bytes()
    assert pyctl("plan", "--env", fixture_env.dir, "--require-lock-file").exit_code == 0
    assert lock.read_bytes() == before


def _mirror(root: Path) -> Path:
    """A packed filesystem mirror holding the provider for each platform."""
    host, namespace, name, version = PROVIDER
    folder = root / host / namespace / name
    folder.mkdir(parents=True)
    for platform in PLATFORMS:
        with zipfile.ZipFile(folder / f"terraform-provider-{name}_{version}_{platform}.zip", "w") as z:
            z.writestr(f"terraform-provider-{name}_v{version}", f"#!/bin/sh\necho {platform}\n")
    return root


def test_init_locks_providers_for_every_platform_from_a_local_mirror(tmp_path, monkeypatch):
    mirror = _mirror(tmp_path / "mirror")
    cli_config = tmp_path / "mirror.tfrc"
    cli_config.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n'
    )
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(cli_config))
    root = tmp_path / "root"
    root.mkdir()
    host, namespace, name, version = PROVIDER
    (root / "main.tf").write_text(
        "terraform {\n  required_providers {\n"
        f'    {name} = {{\n      source  = "{host}/{namespace}/{name}"\n      version = "{version}"\n    }}\n'
        "  }\n}\n"
    )
    tf = Terraform(str(Path(sys.executable).parent / "pyctl-terraform"), console=None)
    target = EnvTarget(name="lock-test", root=root, protected=False, inputs=())

    deploy.init(tf, target, lock_platforms=PLATFORMS, fs_mirror=mirror)

    lock = (root / LOCK_FILE).read_text()
    assert f'provider "{host}/{namespace}/{name}"' in lock and f'version     = "{version}"' in lock
    assert len(re.findall(r'"h1:[A-Za-z0-9+/=]+"', lock)) == len(PLATFORMS)  # one package hash per platform
    assert (root / ".terraform" / "providers" / host / namespace / name / version).is_dir()  # and installed
