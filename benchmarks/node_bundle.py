"""Benchmark: building the node agent bundle (what every `pyctl render` adds) and installing it offline.

For each cloud: ROUNDS fresh processes each build the bundle from the prefetched wheel cache (agent wheel,
hash checks of every cached wheel, tar + gzip), timed around `build_bundle` only; then one offline install
into a fresh venv (`pip install --no-index --require-hashes`, what a node runs). Prints a Markdown table.

    PYCTL_CACHE_DIR=.cache/pyctl .venv/bin/python benchmarks/node_bundle.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

BUILD = (
    "import sys, time; from pathlib import Path; from pyctl.node_bundle import build_bundle\n"
    "t = time.perf_counter(); info = build_bundle(sys.argv[1], Path(sys.argv[2]), offline=True)\n"
    "print(time.perf_counter() - t, info.path.stat().st_size, info.sha256)\n"
)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    rows = []
    for cloud in ("aws", "gcp"):
        with tempfile.TemporaryDirectory() as tmp:
            times, digests = [], set()
            size = 0
            for _ in range(rounds):
                out = subprocess.run(
                    [sys.executable, "-c", BUILD, cloud, tmp], capture_output=True, text=True, check=True
                ).stdout.split()
                times.append(float(out[0]))
                size = int(out[1])
                digests.add(out[2])
            bundle = Path(tmp) / f"agent-{cloud}.tar.gz"
            with tarfile.open(bundle) as archive:
                archive.extractall(Path(tmp) / "x", filter="data")
            wheels = len(list((Path(tmp) / "x" / "wheels").glob("*.whl")))
            venv = Path(tmp) / "venv"
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [
                    str(venv / "bin" / "pip"),
                    "install",
                    "--quiet",
                    "--no-index",
                    "--find-links",
                    str(Path(tmp) / "x" / "wheels"),
                    "--require-hashes",
                    "-r",
                    str(Path(tmp) / "x" / "requirements.txt"),
                ],
                check=True,
            )
            install = time.perf_counter() - t
        rows.append((cloud, size, wheels, statistics.median(times), min(times), len(digests), install))
        print(rows[-1], file=sys.stderr)
    print(
        "| cloud | bundle MB | wheels | build median s | build best s | distinct sha256 | offline venv + install s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for cloud, size, wheels, median, best, distinct, install in rows:
        print(
            f"| {cloud} | {size / 1e6:.1f} | {wheels} | {median:.2f} | {best:.2f} | {distinct} of {rounds} | {install:.1f} |"
        )


if __name__ == "__main__":
    main()
