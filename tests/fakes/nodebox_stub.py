"""The node box's stand-ins for what needs hardware or an init system (see fakes/nodebox.py).

Called as `nodebox_stub.py NAME ARGS...` by the wrappers the box puts first on PATH. Every call is
appended to $NODEBOX_OUT/calls.jsonl. The "hardware" (arrays, filesystems, mounts of block devices) is
kept in $NODEBOX_HW, blank after a stop/start; a block device's data is the directory
$NODEBOX_DISKS/<device name>.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if "NODEBOX_OUT" not in os.environ:
    sys.exit("nodebox stub: NODEBOX_OUT is not set (run only inside a node box)")
OUT = Path(os.environ["NODEBOX_OUT"])
HW = Path(os.environ["NODEBOX_HW"])
DISKS = Path(os.environ["NODEBOX_DISKS"])
UNITS_DIR = Path("/etc/systemd/system")
REAL_MOUNT = "/usr/bin/mount"


def record(argv: list[str]) -> None:
    with open(OUT / "calls.jsonl", "a", encoding="utf-8") as calls:
        calls.write(json.dumps({"argv": argv, "t": time.time()}) + "\n")


def _load(name: str) -> dict[str, Any]:
    path = HW / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save(name: str, value: dict[str, Any]) -> None:
    HW.mkdir(parents=True, exist_ok=True)
    (HW / f"{name}.json").write_text(json.dumps(value))


# --- block devices -------------------------------------------------------------------------------------------


def _busy(dev: str) -> str | None:
    """Where dev (or an array it belongs to) is mounted, or the array holding it."""
    mounts, arrays = _load("mounts"), _load("arrays")
    holders = [dev] + [array for array, members in arrays.items() if dev in members]
    for target, source in mounts.items():
        if source in holders:
            return target
    for array, members in arrays.items():
        if dev in members and Path(array).exists():
            return array
    return None


def mdadm(args: list[str]) -> int:
    arrays = _load("arrays")
    if args[0] == "--assemble":
        target, devices = args[1], args[2:]
        if arrays.get(target) == devices:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).touch()
            return 0
        print(f"mdadm: no RAID superblock on {devices[0]}", file=sys.stderr)
        return 1
    if args[0] == "--create":
        target = args[1]
        devices = [a for a in args[2:] if not a.startswith("-")]
        for dev in devices:
            if _busy(dev):
                print(f"mdadm: cannot open {dev}: Device or resource busy", file=sys.stderr)
                return 1
        arrays[target] = devices
        _save("arrays", arrays)
        fs = _load("fs")
        fs.pop(target, None)
        _save("fs", fs)
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).touch()
        return 0
    print(f"mdadm: stub does not know {args}", file=sys.stderr)
    return 2


def mkfs(kind: str, args: list[str]) -> int:
    dev = args[-1]
    if _busy(dev) and _busy(dev) != dev:
        print(f"mkfs.{kind}: {dev} contains a mounted filesystem", file=sys.stderr)
        return 1
    fs = _load("fs")
    fs[dev] = kind
    _save("fs", fs)
    (DISKS / Path(dev).name).mkdir(parents=True, exist_ok=True)
    return 0


def blkid(args: list[str]) -> int:
    dev = args[-1]
    kind = _load("fs").get(dev)
    if kind is None:
        return 2
    print(f'{dev}: TYPE="{kind}"')
    return 0


def lsblk(args: list[str]) -> int:
    # Only `lsblk -nrpo MOUNTPOINT DEV`: the device's and its array's mount points, one per line.
    dev = args[-1]
    mounts, arrays = _load("mounts"), _load("arrays")
    holders = [dev] + [array for array, members in arrays.items() if dev in members]
    print("")  # the disk itself is not mounted: lsblk prints an empty field for it
    for target, source in sorted(mounts.items()):
        if source in holders:
            print(target)
    return 0


def mount(args: list[str]) -> int:
    mounts = _load("mounts")
    if args[:1] == ["--bind"]:
        source, target = args[1], args[2]
        rc = subprocess.run([REAL_MOUNT, "--bind", source, target], check=False).returncode
        if rc == 0 and source in mounts:
            mounts[target] = mounts[source]
            _save("mounts", mounts)
        return rc
    positional = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-o", "-t"):
            skip = True
        elif not arg.startswith("-"):
            positional.append(arg)
    if len(positional) == 2 and positional[0].startswith("/dev/"):
        source, target = positional
        if not Path(source).exists():
            print(f"mount: {target}: special device {source} does not exist.", file=sys.stderr)
            return 32
        if source not in _load("fs"):
            print(f"mount: {target}: wrong fs type, bad option, bad superblock on {source}.", file=sys.stderr)
            return 32
        data = DISKS / Path(source).name
        data.mkdir(parents=True, exist_ok=True)
        rc = subprocess.run([REAL_MOUNT, "--bind", str(data), target], check=False).returncode
        if rc == 0:
            mounts[target] = source
            _save("mounts", mounts)
        return rc
    return subprocess.run([REAL_MOUNT, *args], check=False).returncode


# --- systemd ---------------------------------------------------------------------------------------------


def parse_unit(name: str) -> dict[str, list[str]] | None:
    path = UNITS_DIR / name
    if not path.exists():
        return None
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "[")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values.setdefault(key, []).append(value)
    return values


def _state_path(name: str) -> Path:
    return OUT / "units" / f"{name}.json"


def unit_state(name: str) -> dict[str, Any] | None:
    path = _state_path(name)
    return json.loads(path.read_text()) if path.exists() else None


def _write_state(name: str, state: dict[str, Any]) -> None:
    path = _state_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def is_active(name: str) -> bool:
    state = unit_state(name)
    if state is None:
        return False
    if state.get("ended") is None:
        return _alive(state["pid"])
    return state["rc"] == 0 and state.get("remain", False)


def _environment(unit: dict[str, list[str]]) -> dict[str, str]:
    env = dict(json.loads(os.environ.get("NODEBOX_UNIT_ENV", "{}")))
    for entry in unit.get("EnvironmentFile", []):
        optional = entry.startswith("-")
        path = Path(entry.lstrip("-"))
        if not path.exists():
            if optional:
                continue
            raise FileNotFoundError(f"EnvironmentFile {path} missing")
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                env[key.strip()] = value.strip().strip("'\"")
    return env


def _expand(command: str, env: dict[str, str]) -> list[str]:
    command = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), command)
    return shlex.split(command)


def run_unit(name: str) -> int:
    """The unit's processes, as systemd would run them; its state says when it started and ended."""
    unit = parse_unit(name) or {}
    state = unit_state(name) or {}
    rc = 0
    with open(OUT / "units" / f"{name}.log", "ab") as log:
        try:
            env = _environment(unit)
            for directory in unit.get("RuntimeDirectory", []):
                Path("/run", directory).mkdir(parents=True, exist_ok=True)
            for key in ("ExecStartPre", "ExecStart"):
                for command in unit.get(key, []):
                    argv = _expand(command.lstrip("-"), env)
                    rc = subprocess.run(argv, env=env, stdout=log, stderr=log, check=False).returncode
                    if rc != 0:
                        break
                if rc != 0:
                    break
        except Exception as exc:  # noqa: BLE001 - a unit that cannot start fails, like systemd's
            log.write(f"nodebox systemd: {name}: {exc}\n".encode())
            rc = 1
    running = []
    for other in (OUT / "units").glob("*.json"):
        if (
            other.stem != name
            and is_active(other.stem)
            and (unit_state(other.stem) or {}).get("ended") is None
        ):
            running.append(other.stem)
    state.update(ended=time.time(), rc=rc, running_at_end=sorted(running))
    _write_state(name, state)
    return rc


def start(name: str, block: bool) -> int:
    unit = parse_unit(name)
    if unit is None:
        print(f"Failed to start {name}: Unit {name} not found.", file=sys.stderr)
        return 5
    if is_active(name):
        return 0
    for required in " ".join(unit.get("Requires", [])).split():
        if parse_unit(required) is not None and start(required, block=True) != 0:
            print(f"A dependency job for {name} failed.", file=sys.stderr)
            return 1
    kind = (unit.get("Type") or ["simple"])[0]
    state = {
        "type": kind,
        "remain": (unit.get("RemainAfterExit") or ["no"])[0] == "yes",
        "started": time.time(),
        "ended": None,
        "blocking": block,
        "requires_mounts_for": unit.get("RequiresMountsFor", []),
    }
    if block and kind == "oneshot":
        state["pid"] = os.getpid()
        _write_state(name, state)
        return 0 if run_unit(name) == 0 else 1
    proc = subprocess.Popen(  # noqa: S603 - the stub itself
        [sys.executable, __file__, "systemctl", "__run", name],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state["pid"] = proc.pid
    _write_state(name, state)
    return 0


def systemctl(args: list[str]) -> int:
    flags = {a for a in args if a.startswith("--")}
    words = [a for a in args if not a.startswith("--")]
    verb, units = words[0], words[1:]
    block = "--no-block" not in flags
    if verb == "__run":
        return run_unit(units[0])
    if verb == "__boot":
        wants = UNITS_DIR / "multi-user.target.wants"
        rc = 0
        for link in sorted(wants.iterdir()) if wants.exists() else []:
            if parse_unit(link.name) is not None:  # the image's own units are not part of the box
                rc |= start(link.name, block=False)
        return rc
    if verb == "daemon-reload":
        return 0
    if verb == "enable":
        rc = 0
        for name in units:
            unit = parse_unit(name)
            if unit is None:
                print(f"Failed to enable unit: Unit file {name} does not exist.", file=sys.stderr)
                return 1
            for target in " ".join(unit.get("WantedBy", [])).split():
                wants = UNITS_DIR / f"{target}.wants"
                wants.mkdir(parents=True, exist_ok=True)
                link = wants / name
                if not link.is_symlink():
                    link.symlink_to(UNITS_DIR / name)
            if "--now" in flags:
                rc |= start(name, block)
        return rc
    if verb == "start":
        return max((start(name, block) for name in units), default=0)
    if verb == "restart":
        # Services of the image (the Ops Agent) are "running"; ours restart.
        return max((start(name, block) if parse_unit(name) else 0 for name in units), default=0)
    if verb == "is-active":
        return 0 if all(is_active(name) for name in units) else 3
    print(f"systemctl stub: unsupported {args}", file=sys.stderr)
    return 1


# --- the rest -------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    name, args = Path(argv[0]).name, argv[1:]
    if not (name == "systemctl" and args[:1] == ["__run"]):
        record([name, *args])
    if name == "systemctl":
        return systemctl(args)
    if name == "mdadm":
        return mdadm(args)
    if name.startswith("mkfs."):
        return mkfs(name.split(".", 1)[1], args)
    if name == "blkid":
        return blkid(args)
    if name == "lsblk":
        return lsblk(args)
    if name == "mount":
        return mount(args)
    if name == "nvidia-smi":
        gpus = int(os.environ.get("NODEBOX_GPUS", "1"))
        for i in range(gpus):
            print(f"GPU {i}: NVIDIA L4 (UUID: GPU-00000000-0000-0000-0000-00000000000{i})")
        return 0
    if name == "dpkg":
        if args[:1] == ["--print-architecture"]:
            print("amd64")
        return 0  # dpkg -s: the image's packages (the Ops Agent) are installed
    return 0  # apt-get, amazon-cloudwatch-agent-ctl: recorded only


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
