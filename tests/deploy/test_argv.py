"""argv building is pure: each verb's terraform command line, table-tested."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyctl import terraform as tf
from pyctl.errors import PyctlError

ROOT = Path("/repo/infra/envs/prod")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (tf.init_argv(ROOT), ["-chdir=/repo/infra/envs/prod", "init", "-input=false", "-no-color"]),
        (
            tf.init_argv(ROOT, backend_config=ROOT / "backend.hcl", lock_timeout="5m", readonly_lock=True),
            [
                "-chdir=/repo/infra/envs/prod",
                "init",
                "-input=false",
                "-no-color",
                "-backend-config=/repo/infra/envs/prod/backend.hcl",
                "-lockfile=readonly",
                "-lock-timeout=5m",
            ],
        ),
        (
            tf.plan_argv(ROOT, out=Path("/tmp/p.tfplan")),
            ["-chdir=/repo/infra/envs/prod", "plan", "-input=false", "-json", "-out=/tmp/p.tfplan"],
        ),
        (
            tf.plan_argv(
                ROOT,
                out=None,
                var_files=[Path("/x/extra.tfvars.json")],
                destroy=True,
                detailed_exitcode=True,
                lock_timeout="30s",
                json_ui=False,
            ),
            [
                "-chdir=/repo/infra/envs/prod",
                "plan",
                "-input=false",
                "-no-color",
                "-var-file=/x/extra.tfvars.json",
                "-destroy",
                "-detailed-exitcode",
                "-lock-timeout=30s",
            ],
        ),
        (
            tf.apply_argv(ROOT, Path("/tmp/p.tfplan"), lock_timeout="1m"),
            [
                "-chdir=/repo/infra/envs/prod",
                "apply",
                "-input=false",
                "-json",
                "-lock-timeout=1m",
                "/tmp/p.tfplan",
            ],
        ),
        (
            tf.show_plan_argv(ROOT, Path("p.tfplan")),
            ["-chdir=/repo/infra/envs/prod", "show", "-json", "p.tfplan"],
        ),
        (tf.output_argv(ROOT), ["-chdir=/repo/infra/envs/prod", "output", "-json"]),
        (tf.output_argv(ROOT, "gpu_pools"), ["-chdir=/repo/infra/envs/prod", "output", "-json", "gpu_pools"]),
        (tf.version_argv(), ["version", "-json"]),
        (
            tf.force_unlock_argv(ROOT, "abc-123"),
            ["-chdir=/repo/infra/envs/prod", "force-unlock", "-force", "abc-123"],
        ),
    ],
)
def test_argv(argv, expected):
    assert argv == expected


def test_the_saved_plan_is_the_last_argument_of_apply():
    # terraform apply treats a trailing positional argument as the plan file to apply, and nothing else.
    assert tf.apply_argv(ROOT, Path("/p.tfplan"), json_ui=False)[-1] == "/p.tfplan"


def _exe(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_resolution_order(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tofu = _exe(bin_dir, "tofu")
    assert tf.resolve_executable(environ={"PATH": str(bin_dir)}) == str(tofu)
    terraform = _exe(bin_dir, "terraform")
    assert tf.resolve_executable(environ={"PATH": str(bin_dir)}) == str(terraform)
    chosen = _exe(tmp_path, "my-terraform")
    assert tf.resolve_executable(environ={"PATH": str(bin_dir), "PYCTL_TERRAFORM": str(chosen)}) == str(
        chosen
    )
    assert tf.resolve_executable(str(tofu), environ={"PATH": "", "PYCTL_TERRAFORM": str(chosen)}) == str(tofu)


def test_missing_explicit_executable_is_a_user_error(tmp_path):
    with pytest.raises(tf.PyctlError, match="terraform executable not found: /nope/terraform"):
        tf.resolve_executable("/nope/terraform", environ={"PATH": ""})


def test_bundled_terraform_is_the_last_resort():
    assert Path(tf.resolve_executable(environ={"PATH": ""})).name == "pyctl-terraform"


@pytest.mark.parametrize(
    ("platforms", "mirror", "argv"),
    [
        (
            tf.DEFAULT_LOCK_PLATFORMS,
            None,
            [
                "-chdir=/repo/infra/envs/prod",
                "providers",
                "lock",
                "-platform=linux_amd64",
                "-platform=linux_arm64",
                "-platform=darwin_amd64",
                "-platform=darwin_arm64",
            ],
        ),
        (
            ("linux_amd64", "linux_amd64", "darwin_arm64"),  # repeated: once
            Path("/srv/mirror"),
            [
                "-chdir=/repo/infra/envs/prod",
                "providers",
                "lock",
                "-platform=linux_amd64",
                "-platform=darwin_arm64",
                "-fs-mirror=/srv/mirror",
            ],
        ),
    ],
)
def test_providers_lock_argv(platforms, mirror, argv):
    assert tf.providers_lock_argv(ROOT, platforms, fs_mirror=mirror) == argv


@pytest.mark.parametrize(
    ("platforms", "message"),
    [((), "no platform to lock providers for"), (("linux-amd64",), "--platform: linux-amd64 is not OS_ARCH")],
)
def test_providers_lock_argv_rejects_bad_platforms(platforms, message):
    with pytest.raises(PyctlError, match=message):
        tf.providers_lock_argv(ROOT, platforms)
