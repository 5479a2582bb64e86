"""A node in a box: run the exact user-data / startup-script bytes Terraform sends, as root, in Linux namespaces.

`NodeBox(workdir, node).boot()` starts `unshare --mount --net --pid --fork` around this module's inner
runner (`python -m fakes.nodebox --inner CONFIG`), which, inside the namespaces:

- brings `lo` up with 169.254.169.254/32 on it and serves there the instance metadata (a local IMDSv2,
  `fakes.imds`, with the instance's tags and role credentials; or the GCE metadata server,
  `fakes.metadata_fake`, reached as metadata.google.internal through a bind-mounted hosts file);
- serves the cloud's storage and secrets on loopback: moto (S3, SSM, Secrets Manager) for AWS, the fake
  GCS JSON API for GCP, seeded with the agent bundle, the model and the boot secrets;
- lays the machine out: overlays over /etc, /opt, /var and /usr/local whose upper layers are the box's
  "root disk" (kept from one boot to the next, like an EBS root volume or a persistent disk across a
  stop/start), a fresh tmpfs /run, a private /dev with the instance-store disks as files under
  /dev/disk/by-id, a fresh /proc;
- puts recording stubs first on PATH for what needs hardware or an init system (systemctl, mdadm,
  mkfs.*, mount of block devices, blkid, lsblk, nvidia-smi, apt-get/dpkg, the metrics agents) and the real
  AWS CLI (awscli from PyPI, `make install` puts it in .tools/awscli) against moto;
- runs the script with bash, then waits for the units it started in the background.

The `systemctl` stub is a tiny init: `start` runs a unit's ExecStartPre/ExecStart (EnvironmentFile=,
$VAR expansion, RuntimeDirectory=) in the foreground for a blocking start of a oneshot, else in the
background; it records when each unit started and ended and which other units were running when it ended.
A "disk" is a directory under the box's workdir: the `mount` stub bind-mounts it, so what the agent writes
onto the NVMe cache lands there. A second `boot()` after `stop_start()` has blank disks and the same root
disk, and (AWS) does not run the user data again: the enabled units start, as systemd would start them.

Every stub call, unit start/end and the console output are recorded in the box's `out/` directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
AWSCLI = REPO / ".tools" / "awscli" / "bin" / "aws"
METADATA_IP = "169.254.169.254"
OVERLAID = ("etc", "opt", "var", "usr/local", "root", "mnt")
# What the machine image brings: the CloudWatch agent (the DLAMI ships it), the Ops Agent (installed).
CW_CTL = "opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"


@dataclass
class Node:
    """The instance a box boots."""

    cloud: str  # "aws" or "gcp"
    script: bytes  # the user data (AWS, base64-decoded) or the startup-script, byte for byte
    region: str = "us-east-1"
    tags: dict[str, str] = field(default_factory=dict)  # AWS instance tags / GCE custom metadata
    disks: int = 0  # local NVMe instance-store / Local SSD disks
    premounted: str | None = None  # the image already assembled and mounted the disks here (DLAMI)
    python: str = ""  # what `python3` is on the image (default: this interpreter's base)
    objects: dict[str, dict[str, str]] = field(default_factory=dict)  # bucket -> key -> local file
    ssm: dict[str, str] = field(default_factory=dict)  # SecureString parameters
    secrets: dict[str, str] = field(default_factory=dict)  # Secrets Manager secrets
    unit_timeout: float = 60.0


@dataclass
class Boot:
    """What one boot left behind."""

    rc: int
    console: str
    calls: list[dict[str, Any]]
    units: dict[str, dict[str, Any]]
    out: Path

    def called(self, name: str) -> list[list[str]]:
        return [c["argv"][1:] for c in self.calls if c["argv"][0] == name]


class NodeBox:
    def __init__(self, workdir: Path, node: Node) -> None:
        if node.cloud == "aws" and not AWSCLI.exists():
            raise RuntimeError(
                f"{AWSCLI} is missing: `make install` creates it (the AWS boot script needs the real CLI)"
            )
        self.dir = workdir
        self.node = node
        self.dir.mkdir(parents=True, exist_ok=True)
        self.boots = 0

    @property
    def disks_dir(self) -> Path:
        return self.dir / "disks"

    def root(self, path: str) -> Path:
        """A path on the box's root disk (the overlays' upper layers), e.g. root('/etc/pyctl/agent.env')."""
        rel = path.lstrip("/")
        for top in sorted(OVERLAID, key=len, reverse=True):
            if rel == top or rel.startswith(top + "/"):
                return self.dir / "rootfs" / top.replace("/", "_") / "upper" / rel[len(top) :].lstrip("/")
        raise ValueError(f"{path} is not on the box's root disk ({', '.join(OVERLAID)})")

    def stop_start(self) -> None:
        """A stop and start: the instance store comes back blank; the root disk stays."""
        shutil.rmtree(self.disks_dir, ignore_errors=True)
        shutil.rmtree(self.dir / "hw", ignore_errors=True)

    def root_snapshot(self, exclude: tuple[str, ...] = ("var/log/",)) -> dict[str, str]:
        """path -> mode and sha256 of every file and link on the root disk."""
        snap: dict[str, str] = {}
        base = self.dir / "rootfs"
        for top in OVERLAID:
            upper = base / top.replace("/", "_") / "upper"
            for path in sorted(upper.rglob("*")) if upper.exists() else []:
                rel = f"{top}/{path.relative_to(upper)}"
                if any(rel.startswith(e) for e in exclude) or path.is_dir() and not path.is_symlink():
                    continue
                if path.is_symlink():
                    snap[rel] = f"-> {os.readlink(path)}"
                else:
                    # small files by content (a rewrite with the same bytes is no change); big ones (the
                    # venv's libraries) by size and mtime, which a reinstall would change
                    st = path.stat()
                    if st.st_size < 1 << 20:
                        snap[rel] = f"{oct(st.st_mode)} {hashlib.sha256(path.read_bytes()).hexdigest()}"
                    else:
                        snap[rel] = f"{oct(st.st_mode)} {st.st_size} {st.st_mtime_ns}"
        return snap

    def boot(self, timeout: float = 180) -> Boot:
        self.boots += 1
        out = self.dir / f"out-{self.boots}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        config = {
            "node": {**asdict(self.node), "script": self.node.script.decode("latin-1")},
            "dir": str(self.dir),
            "out": str(out),
            "first_boot": self.boots == 1 or not self.root("/etc/systemd/system").exists(),
        }
        # The node's script travels in the JSON config as latin-1 text: every byte survives unchanged.
        config_path = out / "config.json"
        config_path.write_text(json.dumps(config))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(TESTS) + os.pathsep + str(REPO),
            "HOME": "/root",
        }
        proc = subprocess.run(
            [
                "unshare",
                "--mount",
                "--net",
                "--pid",
                "--fork",
                "--kill-child",
                sys.executable,
                "-m",
                "fakes.nodebox",
            ]
            + ["--inner", str(config_path)],
            cwd=TESTS,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        result_path = out / "result.json"
        if not result_path.exists():
            raise RuntimeError(
                f"node box runner failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        result = json.loads(result_path.read_text())
        calls = (
            [json.loads(line) for line in (out / "calls.jsonl").read_text().splitlines()]
            if (out / "calls.jsonl").exists()
            else []
        )
        units = {p.stem: json.loads(p.read_text()) for p in sorted((out / "units").glob("*.json"))}
        return Boot(result["rc"], (out / "console.log").read_text(errors="replace"), calls, units, out)


# --- inside the namespaces ---------------------------------------------------------------------------------


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


def _wrapper(path: Path, name: str) -> None:
    path.write_text(f'#!/bin/sh\nexec {sys.executable} {HERE / "nodebox_stub.py"} {name} "$@"\n')
    path.chmod(0o755)


def _layout(box: Path, node: dict[str, Any], out: Path) -> Path:
    """Mounts, /dev, hosts file and stubs; returns the stub directory."""
    _sh("mount", "--make-rprivate", "/")
    _sh("ip", "link", "set", "lo", "up")
    _sh("ip", "addr", "add", f"{METADATA_IP}/32", "dev", "lo")
    for top in OVERLAID:
        layer = box / "rootfs" / top.replace("/", "_")
        (layer / "upper").mkdir(parents=True, exist_ok=True)
        (layer / "work").mkdir(parents=True, exist_ok=True)
        lower = f"/{top}"
        _sh(
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={lower},upperdir={layer}/upper,workdir={layer}/work",
            lower,
        )
    _sh("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
    _sh("mount", "-t", "proc", "proc", "/proc")
    hw = box / "hw"
    hw.mkdir(exist_ok=True)
    dev = box / "dev-staging"
    dev.mkdir(exist_ok=True)
    _sh("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(dev))
    for name in ("null", "zero", "random", "urandom", "full", "tty"):
        if Path(f"/dev/{name}").exists():
            (dev / name).touch()
            _sh("mount", "--bind", f"/dev/{name}", str(dev / name))
    (dev / "fd").symlink_to("/proc/self/fd")
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        (dev / name).symlink_to(f"/proc/self/fd/{i}")
    (dev / "shm").mkdir()
    (dev / "md").mkdir()
    by_id = dev / "disk" / "by-id"
    by_id.mkdir(parents=True)
    prefix = (
        "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS" if node["cloud"] == "aws" else "google-local-nvme-ssd-"
    )
    for i in range(node["disks"]):
        (dev / f"nvme{i + 1}n1").touch()
        serial = f"{i:017X}" if node["cloud"] == "aws" else str(i)
        (by_id / f"{prefix}{serial}").symlink_to(f"../../nvme{i + 1}n1")
    _sh("mount", "--move", str(dev), "/dev")
    _sh("mount", "-t", "tmpfs", "tmpfs", "/dev/shm")
    hosts = out / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{METADATA_IP} metadata.google.internal metadata\n")
    _sh("mount", "--bind", str(hosts), "/etc/hosts")
    if node["premounted"] and node["disks"]:
        # The image assembled the disks as md0 and mounted it (the DLAMI's /opt/dlami/nvme).
        members = [f"/dev/nvme{i + 1}n1" for i in range(node["disks"])]
        Path("/dev/md0").touch()
        arrays = {"/dev/md0": members}
        (hw / "arrays.json").write_text(json.dumps(arrays))
        (hw / "fs.json").write_text(json.dumps({"/dev/md0": "xfs"}))
        data = box / "disks" / "md0"
        data.mkdir(parents=True, exist_ok=True)
        Path(node["premounted"]).mkdir(parents=True, exist_ok=True)
        _sh("mount", "--bind", str(data), node["premounted"])
        (hw / "mounts.json").write_text(json.dumps({node["premounted"]: "/dev/md0"}))
    stubs = out / "stubs"
    stubs.mkdir()
    for name in (
        "systemctl",
        "mdadm",
        "mkfs.xfs",
        "mkfs.ext4",
        "blkid",
        "lsblk",
        "mount",
        "nvidia-smi",
        "apt-get",
        "dpkg",
    ):
        _wrapper(stubs / name, name)
    python = node["python"] or os.path.realpath(sys._base_executable)  # type: ignore[attr-defined]
    (stubs / "python3").symlink_to(python)
    if node["cloud"] == "aws" and AWSCLI.exists():
        (stubs / "aws").symlink_to(AWSCLI)
    ctl = Path("/") / CW_CTL
    if node["cloud"] == "aws" and not ctl.exists():
        ctl.parent.mkdir(parents=True, exist_ok=True)
        _wrapper(ctl, "amazon-cloudwatch-agent-ctl")
    return stubs


def _serve(node: dict[str, Any]) -> tuple[dict[str, str], list[Any]]:
    """Metadata, storage and secrets inside the namespace; returns the endpoint variables for the node."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    keep: list[Any] = []
    env: dict[str, str] = {}
    if node["cloud"] == "aws":
        import boto3
        from moto.server import ThreadedMotoServer

        from fakes.imds import ImdsState, imds_server

        imds = imds_server(
            ImdsState(
                instance_id="i-0nodebox000000001", region=node["region"], tags=node["tags"], role="pyctl-node"
            ),
            host=METADATA_IP,
            port=80,
        )
        threading.Thread(target=imds.serve_forever, daemon=True).start()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        host, port = moto.get_host_and_port()
        env["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
        keep += [imds, moto]
        session = boto3.Session(
            aws_access_key_id="seed",
            aws_secret_access_key="seed",
            region_name=node["region"],  # noqa: S106
        )
        s3 = session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
        for bucket, objects in node["objects"].items():
            extra = (
                {}
                if node["region"] == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": node["region"]}}
            )
            s3.create_bucket(Bucket=bucket, **extra)
            for key, path in objects.items():
                s3.upload_file(path, bucket, key)
        ssm = session.client("ssm", endpoint_url=env["AWS_ENDPOINT_URL"])
        for name, value in node["ssm"].items():
            ssm.put_parameter(Name=name, Value=value, Type="SecureString")
        secrets = session.client("secretsmanager", endpoint_url=env["AWS_ENDPOINT_URL"])
        for name, value in node["secrets"].items():
            secrets.create_secret(Name=name, SecretString=value)
    else:
        from fakes.gcs_fake import GcsFake
        from fakes.metadata_fake import MetadataFake

        metadata = MetadataFake(attributes=dict(node["tags"]))
        keep.append(metadata.serve(host=METADATA_IP, port=80))
        gcs = GcsFake()
        keep.append(gcs)
        for bucket, objects in node["objects"].items():
            gcs.create_bucket(bucket)
            for key, path in objects.items():
                gcs.put(bucket, key, Path(path).read_bytes())
        env["STORAGE_EMULATOR_HOST"] = gcs.url
    return env, keep


def _wait_units(out: Path, timeout: float) -> None:
    """Until no unit started in the background is still running a oneshot (long-running ones keep running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for path in (out / "units").glob("*.json"):
            unit = json.loads(path.read_text())
            if unit.get("type") == "oneshot" and unit.get("ended") is None:
                busy = True
        if not busy:
            return
        time.sleep(0.1)


def inner(config_path: Path) -> int:
    config = json.loads(config_path.read_text())
    node, box, out = config["node"], Path(config["dir"]), Path(config["out"])
    (out / "units").mkdir(exist_ok=True)
    stubs = _layout(box, node, out)
    endpoints, _keep = _serve(node)
    path = f"{stubs}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    # What the stubs and the units see: the node's endpoints (the runner's environment, not the script's).
    stub_env = {"NODEBOX_OUT": str(out), "NODEBOX_HW": str(box / "hw"), "NODEBOX_DISKS": str(box / "disks")}
    harness = {**stub_env, "NODEBOX_UNIT_ENV": json.dumps({"PATH": path, **endpoints, **stub_env})}
    env = {"PATH": path, "HOME": "/root", "LANG": "C.UTF-8", **endpoints, **harness}
    script = out / "node-script"
    script.write_bytes(node["script"].encode("latin-1"))
    script.chmod(0o700)
    rc = 0
    with open(out / "console.log", "ab") as console:
        if config["first_boot"] or node["cloud"] == "gcp":
            if not config["first_boot"]:
                # systemd starts the enabled units; GCE's guest agent runs the startup script again.
                subprocess.run(
                    [str(stubs / "systemctl"), "__boot"], env=env, stdout=console, stderr=console, check=False
                )
            proc = subprocess.run(
                ["/bin/bash", str(script)], env=env, stdout=console, stderr=console, timeout=300, check=False
            )
            rc = proc.returncode
        else:
            # User data runs once per instance: on a later boot only the enabled units start.
            rc = subprocess.run(
                [str(stubs / "systemctl"), "__boot"], env=env, stdout=console, stderr=console, check=False
            ).returncode
    _wait_units(out, node["unit_timeout"])
    (out / "result.json").write_text(json.dumps({"rc": rc}))
    return 0


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inner", type=Path, required=True)
    args = parser.parse_args(argv)
    return inner(args.inner)


if __name__ == "__main__":
    sys.exit(_main())
