"""A read-only S3-compatible server for the model-fetch benchmark: serves a directory with `sendfile`.

moto copies the whole object for every ranged GET (a 2 GB model fetched in 64 MiB ranges costs moto
~30x the bytes), which distorts every multi-part client. This server answers what fetch clients send, and
no more: GetObject and HeadObject (path-style `/BUCKET/KEY`, `Range: bytes=A-B`, 200/206/404/416),
ListObjectsV2 (`?list-type=2`, prefix, continuation) and HeadBucket. Bodies go out with
`socket.sendfile` (zero copy from the page cache). Requests are not authenticated: it binds to loopback.

    python benchmarks/s3_read_server.py ROOT [--port 0]   # ROOT/BUCKET/KEY; prints the URL on stdout

A benchmark tool only: no writes, no signatures, no virtual-host addressing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import urllib.parse
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _etag(stat: os.stat_result) -> str:
    return (
        '"'
        + hashlib.md5(f"{stat.st_size}:{stat.st_mtime_ns}".encode(), usedforsecurity=False).hexdigest()
        + '"'
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root: Path
    server_version = "s3-read-server"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _error(self, status: int, code: str) -> None:
        body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code></Error>'.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _split(self) -> tuple[str, str, dict[str, list[str]]]:
        parsed = urllib.parse.urlsplit(self.path)
        bucket, _, key = urllib.parse.unquote(parsed.path).lstrip("/").partition("/")
        return bucket, key, urllib.parse.parse_qs(parsed.query, keep_blank_values=True)

    def _file(self, bucket: str, key: str) -> Path | None:
        base = (self.root / bucket).resolve()
        path = (base / key).resolve()
        if not key or base not in path.parents or not path.is_file():
            return None
        return path

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        bucket, key, query = self._split()
        if not (self.root / bucket).is_dir():
            return self._error(404, "NoSuchBucket")
        if not key:
            if "list-type" in query:
                return self._list(bucket, query)
            if self.command == "HEAD" or "location" in query:
                return self._bucket_ok("location" in query)
            return self._list(bucket, query)
        path = self._file(bucket, key)
        if path is None:
            return self._error(404, "NoSuchKey")
        stat = path.stat()
        size = stat.st_size
        start, end, status = 0, size - 1, 200
        wanted = self.headers.get("Range")
        if wanted:
            match = _RANGE.match(wanted.strip())
            if match is None:
                return self._error(416, "InvalidRange")
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            elif last:
                start, end = max(size - int(last), 0), size - 1
            if start >= size or start > end:
                return self._error(416, "InvalidRange")
            status = 206
        length = end - start + 1 if size else 0
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", _etag(stat))
        self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if self.command == "HEAD" or not length:
            return
        self.wfile.flush()
        with path.open("rb") as handle:
            sent = self.connection.sendfile(handle, start, length)
        if sent != length:
            self.close_connection = True

    def _bucket_ok(self, location: bool) -> None:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><LocationConstraint xmlns="{_NS}"/>'.encode()
            if location
            else b""
        )
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-bucket-region", "us-east-1")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _list(self, bucket: str, query: dict[str, list[str]]) -> None:
        prefix = query.get("prefix", [""])[0]
        after = query.get("continuation-token", query.get("start-after", [""]))[0]
        max_keys = int(query.get("max-keys", ["1000"])[0])
        base = self.root / bucket
        keys = sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        keys = [k for k in keys if k.startswith(prefix) and k > after]
        page, truncated = keys[:max_keys], len(keys) > max_keys
        items = []
        for key in page:
            stat = (base / key).stat()
            modified = datetime.fromtimestamp(stat.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            items.append(
                f"<Contents><Key>{escape(key)}</Key><LastModified>{modified}</LastModified>"
                f"<ETag>{escape(_etag(stat))}</ETag><Size>{stat.st_size}</Size>"
                "<StorageClass>STANDARD</StorageClass></Contents>"
            )
        token = f"<NextContinuationToken>{escape(page[-1])}</NextContinuationToken>" if truncated else ""
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{_NS}"><Name>{escape(bucket)}</Name>'
            f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>"
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{token}{''.join(items)}</ListBucketResult>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(root: Path, port: int = 0) -> ThreadingHTTPServer:
    handler = type("RootHandler", (Handler,), {"root": root.resolve()})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    return server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = serve(args.root, args.port)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
