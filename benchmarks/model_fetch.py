"""Benchmark: `pyctl-agent fetch-model` vs boto3's `download_file` loop vs plain parallel HTTP GETs.

Starts a moto server in its own process (so it does not share the client's GIL), pushes a random
multi-file model of at least 2 GB with `pyctl model push`'s code path, then times each method fetching
the whole model into a fresh directory on the same disk. Prints one line per run and a Markdown table.

    .venv/bin/python benchmarks/model_fetch.py                         # defaults: 2 GiB, 16 shards
    .venv/bin/python benchmarks/model_fetch.py --sweep                 # + part size x concurrency grid

The plain HTTP GET is the physical reference on this machine: unsigned GETs with http.client straight
into the file (no SDK, no checksum); it shows what the moto server, loopback and disk can give at all.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pyctl import model_cache  # noqa: E402
from pyctl.clouds.aws import client  # noqa: E402
from pyctl.clouds.aws.storage import S3Store  # noqa: E402
from pyctl.core.models import MIB, auto_part_size, object_key, plan_ranges  # noqa: E402

BUCKET = "bench-models"
NAME = "bench-model"
VERSION = "v1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()  # noqa: S310 - loopback
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def make_model(root: Path, total_bytes: int, shards: int) -> None:
    """Random safetensors-like shards plus the small files a real model has."""
    shard = total_bytes // shards
    block = 16 * MIB
    for i in range(shards):
        with (root / f"model-{i + 1:05d}-of-{shards:05d}.safetensors").open("wb") as handle:
            left = shard
            while left:
                n = min(block, left)
                handle.write(os.urandom(n))
                left -= n
    (root / "config.json").write_bytes(os.urandom(1_000))
    (root / "tokenizer.json").write_bytes(os.urandom(9_000_000))
    (root / "generation_config.json").write_bytes(os.urandom(200))


def keys_and_sizes(src: Path) -> list[tuple[str, str, int]]:
    """(relative path, object key, size) for every file of the pushed model."""
    out = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src).as_posix()
        out.append((rel, object_key("", NAME, VERSION, rel), path.stat().st_size))
    return out


def run_fetch_model(dest: Path, concurrency: int, part_size: int | None) -> None:
    """The real command, in its own process: `pyctl-agent fetch-model ... --no-progress`."""
    argv = [str(Path(sys.executable).parent / "pyctl-agent"), "fetch-model", NAME, "--version", VERSION]
    argv += ["--to", str(dest), "--bucket", BUCKET, "--concurrency", str(concurrency), "--no-progress"]
    if part_size is not None:
        argv += ["--part-size-mib", str(part_size // MIB)]
    subprocess.run(argv, check=True, stderr=subprocess.DEVNULL)


def run_boto3_loop(dest: Path, files: list[tuple[str, str, int]]) -> None:
    """What people write first: boto3 defaults, one download_file per file, in order."""
    import boto3

    s3 = boto3.client("s3")
    for rel, key, _ in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(BUCKET, key, str(target))


def run_plain_http(
    dest: Path, files: list[tuple[str, str, int]], url: str, concurrency: int, part_size: int
) -> None:
    """Ranged GETs of presigned URLs with http.client over `concurrency` keep-alive connections, pwrite
    into files (the signature is computed once per file, locally; no SDK on the data path)."""
    host, port = url.removeprefix("http://").split(":")
    s3 = client("s3")
    paths = {
        key: s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}).removeprefix(url)
        for _, key, _ in files
    }
    local = threading.local()
    fds = {}
    for rel, _, size in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fds[rel] = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(fds[rel], size)

    def get(rel: str, key: str, start: int, end: int) -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(host, int(port), timeout=300)
        local.conn.request("GET", paths[key], headers={"Range": f"bytes={start}-{end}"})
        resp = local.conn.getresponse()
        if resp.status not in (200, 206):
            raise SystemExit(f"GET {key}: HTTP {resp.status}")
        offset = start
        while chunk := resp.read(MIB):
            os.pwrite(fds[rel], chunk, offset)
            offset += len(chunk)
        if offset != end + 1:
            raise SystemExit(f"GET {key}: short read")

    with ThreadPoolExecutor(concurrency) as pool:
        futures = [
            pool.submit(get, rel, key, r.start, r.end)
            for rel, key, size in files
            for r in plan_ranges(size, part_size)
        ]
        for future in futures:
            future.result()
    for fd in fds.values():
        os.close(fd)


def timed(
    label: str, total: int, work: Callable[[Path], None], scratch: Path, results: list[tuple[str, float]]
) -> float:
    dest = scratch / "dest"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    os.sync()
    started = time.perf_counter()
    work(dest)
    seconds = time.perf_counter() - started
    rate = total / seconds / 1e6
    results.append((label, rate))
    print(f"{label:58s} {seconds:7.2f} s {rate:8.1f} MB/s", flush=True)
    shutil.rmtree(dest, ignore_errors=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gib", type=float, default=2.0, help="model size in GiB (at least 2)")
    parser.add_argument("--shards", type=int, default=16, help="number of weight shards")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--part-mib", type=int, default=None, help="default: fetch-model's automatic size")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--sweep", action="store_true", help="also time fetch-model over a part x concurrency grid"
    )
    parser.add_argument("--sweep-parts", type=int, nargs="+", default=[16, 64, 128, 256], help="MiB")
    parser.add_argument("--sweep-concurrency", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--scratch", type=Path, default=None, help="directory for the model and fetches")
    args = parser.parse_args()

    moto, url = start_moto()
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S105 - moto's fake credentials
        AWS_DEFAULT_REGION="us-east-1",
    )
    scratch = Path(tempfile.mkdtemp(prefix="model-fetch-bench-", dir=args.scratch))
    try:
        src = scratch / "model"
        src.mkdir()
        make_model(src, int(args.gib * 1024**3), args.shards)
        files = keys_and_sizes(src)
        total = sum(size for _, _, size in files)
        print(f"model: {len(files)} files, {total / 1e9:.2f} GB; moto_server at {url}; {os.cpu_count()} CPUs")
        client("s3").create_bucket(Bucket=BUCKET)
        started = time.perf_counter()
        model_cache.push_model(S3Store(BUCKET), src, NAME, VERSION, allow_pickle=False, log=lambda _: None)
        print(f"push: {time.perf_counter() - started:.1f} s")
        conc = args.concurrency
        part = args.part_mib * MIB if args.part_mib else auto_part_size(total, conc)
        part_mib = part // MIB
        reference = f"plain HTTP GET ({conc} conn, {part_mib} MiB ranges)"
        runs: list[tuple[str, Callable[[Path], None]]] = [
            (reference, lambda d: run_plain_http(d, files, url, conc, part)),
            ("plain HTTP GET (16 conn, whole objects)", lambda d: run_plain_http(d, files, url, 16, 1 << 40)),
            ("boto3 download_file loop (defaults)", lambda d: run_boto3_loop(d, files)),
            (
                f"pyctl-agent fetch-model ({conc} conn, {'' if args.part_mib else 'auto: '}{part_mib} MiB parts, sha256)",
                lambda d: run_fetch_model(d, conc, part if args.part_mib else None),
            ),
        ]
        if args.sweep:
            for sweep_mib in args.sweep_parts:
                for c in args.sweep_concurrency:
                    label = f"sweep fetch-model ({c} conn, {sweep_mib} MiB parts, sha256)"
                    runs.append((label, lambda d, c=c, p=sweep_mib: run_fetch_model(d, c, p * MIB)))
        results: list[tuple[str, float]] = []
        # Rounds interleave the methods (load changes hit all alike) in a new order each round.
        # Measured here: the run right after the push or after the boto3 loop is 20-40% slower whatever
        # it is, so an untimed settling fetch follows both.
        order = random.Random(8)
        settle: list[tuple[str, float]] = []
        timed("(untimed settling fetch)", total, runs[1][1], scratch, settle)
        for round_number in range(args.repeat):
            print(f"round {round_number + 1}, load average {os.getloadavg()[0]:.1f}", flush=True)
            for label, work in order.sample(runs, len(runs)):
                timed(label, total, work, scratch, results)
                if label.startswith("boto3"):
                    timed("(untimed settling fetch)", total, runs[1][1], scratch, settle)
        print(f"\n| method | median MB/s | best MB/s | best / plain HTTP GET ({part_mib} MiB ranges) |")
        print("|---|---:|---:|---:|")
        rates: dict[str, list[float]] = {}
        for label, rate in results:
            rates.setdefault(label, []).append(rate)
        best_reference = max(rates[reference])
        for label, values in rates.items():
            print(
                f"| {label} | {statistics.median(values):.0f} | {max(values):.0f} | "
                f"{max(values) / best_reference:.2f} |"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    main()
