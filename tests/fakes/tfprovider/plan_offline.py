"""`make plan-offline ENV=prod`: the env's real pyctl plan and summary, offline.

Real Terraform core plans a private copy of the env against the stand-in providers (real schemas, fake
values), with its S3 state backend on a local moto server. Nothing is written into the checkout and no cloud
is called. What it cannot tell you: provider-side defaults, enum checks, conflicts between arguments,
forced replacements and API-side rules (see the README's "How Terraform is verified offline").

    python -m fakes.tfprovider.plan_offline --env prod      (from tests/)
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .harness import StandinSession, copy_infra

REPO_ROOT = Path(__file__).resolve().parents[3]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Plan an env offline with the stand-in providers.")
    parser.add_argument("--env", required=True, help="env name under infra/envs")
    args = parser.parse_args(argv)
    source = REPO_ROOT / "infra" / "envs" / args.env
    if not (source / "env.yaml").is_file():
        print(f"error: {source}/env.yaml: no such env", file=sys.stderr)
        return 2

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request

    work = Path(tempfile.mkdtemp(prefix=f"plan-offline-{args.env}-"))
    copy_infra(REPO_ROOT / "infra", work / "infra")
    env_dir = work / "infra" / "envs" / args.env
    backend = dict(re.findall(r'^(\w+)\s*=\s*"([^"]*)"', (env_dir / "backend.hcl").read_text(), re.M))

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        with StandinSession(work / "standin") as standin:
            env = standin.environ({k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))})
            env.update(
                AWS_ENDPOINT_URL=f"http://{host}:{port}",
                AWS_ACCESS_KEY_ID="offline",
                AWS_SECRET_ACCESS_KEY="offline",  # noqa: S106 - moto's fake credentials
                AWS_DEFAULT_REGION=backend.get("region", "us-east-1"),
                PYCTL_TERRAFORM=str(Path(sys.executable).parent / "pyctl-terraform"),
            )
            import boto3

            s3 = boto3.client(
                "s3",
                endpoint_url=env["AWS_ENDPOINT_URL"],
                region_name=env["AWS_DEFAULT_REGION"],
                aws_access_key_id="offline",
                aws_secret_access_key="offline",
            )  # noqa: S106
            extra = {}
            if env["AWS_DEFAULT_REGION"] != "us-east-1":
                extra = {"CreateBucketConfiguration": {"LocationConstraint": env["AWS_DEFAULT_REGION"]}}
            s3.create_bucket(Bucket=backend["bucket"], **extra)
            pyctl = str(Path(sys.executable).parent / "pyctl")
            return subprocess.run([pyctl, "plan", "--env", str(env_dir)], env=env, check=False).returncode
    finally:
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
