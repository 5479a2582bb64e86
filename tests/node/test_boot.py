"""A node in a box: the exact boot script Terraform sends for each pool kind of the shipped envs, executed as
root in Linux namespaces (tests/fakes/nodebox.py), against a local IMDS / GCE metadata server, moto or the
fake GCS, with recording stubs for the hardware and a small systemd.

One box per pool kind boots twice (first boot, then a stop/start with blank instance store). The agent
venv is really created and installed from the bundle in the bucket (pip --no-index --require-hashes) on
every GCP box and on the first AWS box; the other AWS boxes start from a copy of that venv on their root
disk (the install still runs, download and hash check included: pip finds every pinned requirement
satisfied), which keeps the run shorter.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes.nodebox import Boot, Node, NodeBox

from pyctl.core.manifest import build_manifest

from .conftest import PlannedPool

pytestmark = pytest.mark.slow

# One pool per kind in the shipped envs; GCP has no reserved pool there, so the module's reserved example.
KINDS = {
    "aws-reserved": "envs/prod:h100-baseline",
    "aws-on-demand": "envs/staging:a10g-serve",
    "aws-spot": "envs/dev:l4-spot",
    "gcp-spot": "envs/staging:l4-overflow",
    "gcp-reserved": "modules/gcp-gpu-pool/examples/reserved-n1-t4:t4-serve",
}
# Local NVMe instance-store disks per AWS type (EC2 instance-type docs); GCP counts come from the template,
# except the A3 types, whose Local SSDs come with the machine type (16 on a3-highgpu-8g).
AWS_DISKS = {"p5.48xlarge": 8, "g5.12xlarge": 1, "g6.xlarge": 1, "g6e.12xlarge": 2}
GCP_AUTO_SSDS = {"a3-highgpu-8g": 16}
# The on-demand box runs the DLAMI case: the image already assembled and mounted its instance store here.
DLAMI_NVME = "/opt/dlami/nvme"
SECRET_VALUE = "hf_nodeboxSECRETvalue0123456789abcdef"  # noqa: S105 - a fake token the test hunts for


def readonly(script: bytes, name: str) -> str:
    match = re.search(rf"^readonly {name}='([^']*)'$", script.decode(), flags=re.M)
    assert match, f"{name} not in the boot script"
    return match.group(1)


def boot_secrets(script: bytes) -> list[tuple[str, str, str]]:
    match = re.search(r"^readonly BOOT_SECRETS=\((.*)\)$", script.decode(), flags=re.M)
    specs = re.findall(r"'([^']*)'", match.group(1)) if match else []
    return [(s.split("=", 1)[0], *s.split("=", 1)[1].split(":", 1)) for s in specs]  # type: ignore[misc]


@dataclass
class World:
    """Files the bucket serves: the bundle the plan names, a tampered copy, a small model."""

    tmp: Path

    def bundle(self, pool: PlannedPool) -> tuple[str, str, Path]:
        bucket, key = readonly(pool.script, "BUNDLE_BUCKET"), readonly(pool.script, "BUNDLE_KEY")
        planned = pool.objects.get(key)
        assert planned is not None, (
            f"{pool.root}: no bucket object for the agent bundle key {key!r} in the state"
        )
        source = Path(planned["source"])
        return bucket, key, source if source.is_absolute() else pool.root_dir / source

    def model(self, pool: PlannedPool) -> dict[str, str]:
        """key -> local file of a small safetensors model at the version the script fetches ({} if none)."""
        name = readonly(pool.script, "MODEL_NAME")
        version = readonly(pool.script, "MODEL_VERSION") or "2024-01-01"
        if not name:
            return {}
        prefix = readonly(pool.script, "KEY_PREFIX")
        source = self.tmp / "models" / name / version
        if not source.exists():
            source.mkdir(parents=True)
            (source / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
            header = json.dumps({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}).encode()
            (source / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
            manifest = build_manifest(
                source, attributes={"name": name, "version": version, "created": "2024-01-01T00:00:00+00:00"}
            )
            (self.tmp / "models" / f"{name}-{version}.manifest.json").write_text(manifest.to_json())
        base = f"{prefix}models/{name}/{version}/"
        objects = {base + p.name: str(p) for p in sorted(source.iterdir())}
        objects[base + "manifest.json"] = str(self.tmp / "models" / f"{name}-{version}.manifest.json")
        return objects


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("world"))


def make_node(pool: PlannedPool, world: World, **changes: object) -> Node:
    bucket, key, bundle = world.bundle(pool)
    objects = {bucket: {key: str(bundle)}}
    cache_bucket = readonly(pool.script, "CACHE_BUCKET")
    objects.setdefault(cache_bucket, {}).update(world.model(pool))
    if pool.cloud == "aws":
        disks = AWS_DISKS[pool.machine_type]
        region = readonly(pool.script, "PYCTL_REGION")
    else:
        disks = GCP_AUTO_SSDS.get(pool.machine_type, pool.local_ssds)
        region = "us-central1"
    ssm = {name: SECRET_VALUE for _, source, name in boot_secrets(pool.script) if source == "ssm"}
    secrets = {
        name: SECRET_VALUE for _, source, name in boot_secrets(pool.script) if source == "secretsmanager"
    }
    node = Node(
        cloud=pool.cloud,
        script=pool.script,
        region=region,
        tags=pool.tags,
        disks=disks,
        objects=objects,
        ssm=ssm,
        secrets=secrets,
    )
    for name, value in changes.items():
        setattr(node, name, value)
    return node


class Installed:
    """The first box of each cloud that really installed the agent venv (the others copy it)."""

    venvs: dict[str, Path] = {}


def unit_text(box: NodeBox, name: str) -> str:
    return box.root(f"/etc/systemd/system/{name}").read_text()


def exec_start(box: NodeBox, name: str) -> list[str]:
    line = next(line for line in unit_text(box, name).splitlines() if line.startswith("ExecStart="))
    return line.removeprefix("ExecStart=").split()


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def model_files(box: NodeBox) -> list[Path]:
    return sorted(box.disks_dir.rglob("model.safetensors"))


def assert_no_secret(box: NodeBox, boot: Boot, pool: PlannedPool) -> None:
    assert SECRET_VALUE not in boot.console
    for log in boot.out.glob("units/*.log"):
        assert SECRET_VALUE not in log.read_text(errors="replace"), log.name
    assert SECRET_VALUE not in (boot.out / "calls.jsonl").read_text()
    assert SECRET_VALUE.encode() not in pool.script
    assert SECRET_VALUE not in pool.state
    for path in box.root("/var/log").rglob("*"):
        if path.is_file():
            assert SECRET_VALUE not in path.read_text(errors="replace"), path


@pytest.mark.parametrize("kind", list(KINDS))
def test_node_boots_and_survives_a_stop_start(kind: str, planned, world: World, tmp_path: Path) -> None:
    pool = planned[KINDS[kind]]
    premounted = DLAMI_NVME if kind == "aws-on-demand" else None
    box = NodeBox(tmp_path / "box", make_node(pool, world, premounted=premounted))
    if pool.cloud == "aws" and pool.cloud in Installed.venvs:
        # (The GCP script replaces any venv not installed from this very bundle: no shortcut there.)
        shutil.copytree(Installed.venvs[pool.cloud], box.root("/opt/pyctl-agent"), symlinks=True)
    first = box.boot()
    assert first.rc == 0, first.console[-4000:]
    Installed.venvs.setdefault(pool.cloud, box.root("/opt/pyctl-agent"))

    # The agent came from the bucket, checked against the planned hash, into a venv of its own.
    sha = readonly(pool.script, "BUNDLE_SHA256")
    assert re.fullmatch(r"[0-9a-f]{64}", sha)
    assert f"(sha256 {sha}): pyctl-agent " in first.console
    assert box.root("/opt/pyctl-agent/bin/pyctl-agent").exists()
    assert not first.called("apt-get") and not [c for c in first.called("dpkg") if "-i" in c]

    # The job: the instance's own tag / metadata value, and nothing else.
    spot = pool.capacity == "spot"
    agent_env = env_file(box.root("/etc/pyctl/agent.env"))
    job = pool.tags.get("pyctl:job" if pool.cloud == "aws" else "pyctl-job", "") if spot else ""
    assert agent_env["PYCTL_JOB"] == job
    assert agent_env["PYCTL_CLOUD"] == pool.cloud
    units = sorted(p.name for p in box.root("/etc/systemd/system").glob("pyctl-*.service"))
    cache_unit = "pyctl-nvme-cache.service" if pool.cloud == "aws" else "pyctl-local-ssd.service"
    model = readonly(pool.script, "MODEL_NAME")
    expected = {cache_unit} | ({"pyctl-fetch-model.service"} if model else set())
    expected |= {"pyctl-spot-watch.service", "pyctl-resume.service"} if spot else set()
    assert set(units) == expected
    for name in expected - {cache_unit}:
        text = unit_text(box, name)
        assert f"Requires={cache_unit}" in text and "RequiresMountsFor=/mnt/nvme" in text
        assert "EnvironmentFile=/etc/pyctl/agent.env" in text
        assert first.units[name]["started"] > first.units[cache_unit]["ended"]
    if spot:
        argv = exec_start(box, "pyctl-spot-watch.service")
        assert argv[:4] == ["/usr/local/bin/pyctl-agent", "watch", "--job", job]
        assert f"--checkpoint-dir /mnt/nvme/checkpoints/{job}" in " ".join(argv)
        assert exec_start(box, "pyctl-resume.service")[1:4] == ["resume", "--job", job]
        watch = first.units["pyctl-spot-watch.service"]
        assert watch["ended"] is None, "the spot watcher stopped"
    if model:
        version = readonly(pool.script, "MODEL_VERSION") or "latest"
        argv = exec_start(box, "pyctl-fetch-model.service")
        assert argv[1:3] == ["fetch-model", model]
        assert f"--to /mnt/nvme/models/{model}/{version}" in " ".join(argv)
        fetch = first.units["pyctl-fetch-model.service"]
        assert fetch["rc"] == 0, (first.out / "units" / "pyctl-fetch-model.service.log").read_text()[-3000:]
        assert not fetch["blocking"], "the boot script waited for the model download"
        if spot:  # the watcher protects the node while the model downloads
            assert watch["started"] < fetch["started"]
            assert "pyctl-spot-watch.service" in fetch["running_at_end"]
        # The model landed on the instance-store disks (through the mount), not on the root disk.
        assert model_files(box), "the model is not on the NVMe disks"
        assert not list(box.root("/mnt").rglob("model.safetensors")), "the model went to the root disk"

    # NVMe: several disks become one array; disks the image already mounted are reused, never re-created.
    mdadm = first.called("mdadm")
    if premounted:
        assert not [c for c in mdadm if c[0] == "--create"] and not first.called("mkfs.xfs")
        assert ["--bind", DLAMI_NVME, "/mnt/nvme"] in first.called("mount")
        assert model_files(box)[0].is_relative_to(box.disks_dir / "md0")
    elif box.node.disks > 1:
        assert [c[0] for c in mdadm] == ["--assemble", "--create"]
        assert f"--raid-devices={box.node.disks}" in mdadm[1]
    # Secrets: in the root-only environment file of the units, nowhere else.
    secrets_file = box.root("/etc/pyctl/secrets.env")
    if boot_secrets(pool.script):
        assert secrets_file.read_text() == f"HF_TOKEN='{SECRET_VALUE}'\n"
        assert secrets_file.stat().st_mode & 0o777 == 0o600
        assert "EnvironmentFile=-/etc/pyctl/secrets.env" in unit_text(box, "pyctl-fetch-model.service")
    assert SECRET_VALUE not in box.root("/etc/pyctl/agent.env").read_text()
    assert_no_secret(box, first, pool)

    # A stop/start: blank instance store, same root disk. The array is made again, the model fetched
    # again, and nothing on the root disk changes (logs aside).
    before = box.root_snapshot()
    box.stop_start()
    second = box.boot()
    assert second.rc == 0, second.console[-4000:]
    if pool.cloud == "aws":
        assert "bootstrap of" not in second.console, "user data ran again"
    assert box.root_snapshot() == before
    assert second.units[cache_unit]["rc"] == 0
    if premounted:
        assert ["--bind", DLAMI_NVME, "/mnt/nvme"] in second.called("mount")
    elif box.node.disks > 1:
        assert [c[0] for c in second.called("mdadm")] == ["--assemble", "--create"]
    if model:
        assert second.units["pyctl-fetch-model.service"]["rc"] == 0
        assert model_files(box)
    if spot:
        assert second.units["pyctl-spot-watch.service"]["ended"] is None
    assert_no_secret(box, second, pool)


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_a_tampered_bundle_is_refused(cloud: str, planned, world: World, tmp_path: Path) -> None:
    pool = planned[KINDS[f"{cloud}-spot"]]
    node = make_node(pool, world)
    bucket, key, bundle = world.bundle(pool)
    tampered = tmp_path / "tampered.tar.gz"
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    node.objects[bucket][key] = str(tampered)
    box = NodeBox(tmp_path / "box", node)
    boot = box.boot()
    assert boot.rc != 0
    sha = readonly(pool.script, "BUNDLE_SHA256")
    assert re.search(
        rf"ERROR: agent bundle \S+{re.escape(key)} has sha256 [0-9a-f]{{64}}, expected {sha}: refusing",
        boot.console,
    )
    assert not box.root("/opt/pyctl-agent").exists()
    assert not box.root("/etc/systemd/system").exists()
    assert not boot.called("systemctl")


def test_an_image_with_python_3_10_fails_naming_the_interpreter(
    planned, world: World, tmp_path: Path
) -> None:
    python310 = Path("/root/.pyenv/versions/3.10.13/bin/python3.10")
    if not python310.exists():
        pytest.skip("no Python 3.10 interpreter on this machine")
    pool = planned[KINDS["aws-spot"]]
    box = NodeBox(tmp_path / "box", make_node(pool, world, python=str(python310)))
    boot = box.boot()
    assert boot.rc != 0
    assert re.search(
        r"ERROR: \S*python3 is Python 3\.10\.\d+: pyctl-agent needs Python 3\.11\+", boot.console
    )
    assert not box.root("/opt/pyctl-agent").exists()
