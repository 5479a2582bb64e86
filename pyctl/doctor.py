"""`pyctl doctor`: which terraform runs, and whether credentials and the state backend answer.

Every check reports a status; none fails the command for being offline, because CI runners and
laptops without cloud access still need to know which terraform they run.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Literal

from pyctl.errors import PyctlError
from pyctl.spec import LoadedEnv

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


def terraform_check(explicit: str | None) -> Check:
    from pyctl.terraform import resolve_executable

    try:
        exe = resolve_executable(explicit)
    except PyctlError as exc:
        return Check("terraform", "fail", str(exc))
    try:
        out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return Check("terraform", "fail", f"{exe}: {exc}")
    first = (out.stdout.strip().splitlines() or ["(no output)"])[0]
    status: Status = "ok" if out.returncode == 0 else "fail"
    return Check("terraform", status, f"{exe} ({first})")


def aws_checks(loaded: LoadedEnv | None, timeout: float = 5.0) -> list[Check]:
    """STS caller identity and, for an S3 backend, the state bucket."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pyctl.clouds.aws import client, has_credentials

    spec = loaded.spec if loaded else None
    region = (
        spec.clouds.aws.region
        if spec and spec.clouds.aws
        else os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    )
    checks = []
    if not has_credentials():
        checks.append(
            Check("aws credentials", "warn", "none found (environment, profile, SSO or instance role)")
        )
    else:
        try:
            ident = client("sts", region, probe_timeout=timeout).get_caller_identity()
            detail = f"{ident['Arn']}"
            status: Status = "ok"
            if spec and spec.clouds.aws and ident["Account"] != spec.clouds.aws.account_id:
                status, detail = "warn", f"{detail}: not the env's account {spec.clouds.aws.account_id}"
            checks.append(Check("aws credentials", status, detail))
        except (BotoCoreError, ClientError) as exc:
            checks.append(Check("aws credentials", "warn", f"unreachable or refused: {exc}"))
    if spec and spec.backend.s3:
        b = spec.backend.s3
        try:
            client("s3", b.region, probe_timeout=timeout).head_bucket(Bucket=b.bucket)
            checks.append(Check("state backend", "ok", f"s3://{b.bucket}/{b.key}"))
        except (BotoCoreError, ClientError) as exc:
            checks.append(Check("state backend", "warn", f"s3://{b.bucket}: {exc}"))
    return checks


def gcp_checks(loaded: LoadedEnv | None) -> list[Check]:
    spec = loaded.spec if loaded else None
    if spec is None or (spec.clouds.gcp is None and spec.backend.gcs is None):
        return []
    try:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError:
        return [
            Check(
                "gcp credentials", "warn", "google-auth not installed (pip install 'pyctl-gpu-platform[gcp]')"
            )
        ]
    try:
        _, project = google.auth.default()
        return [Check("gcp credentials", "ok", f"application default credentials (project {project})")]
    except DefaultCredentialsError as exc:
        return [Check("gcp credentials", "warn", str(exc).splitlines()[0])]


def run_checks(loaded: LoadedEnv | None, terraform: str | None) -> list[Check]:
    checks = [terraform_check(terraform)]
    if loaded is not None:
        pools = len(loaded.spec.pools)
        checks.append(Check("env", "ok", f"{loaded.name}: valid ({pools} pool{'' if pools == 1 else 's'})"))
    checks += aws_checks(loaded)
    checks += gcp_checks(loaded)
    return checks
