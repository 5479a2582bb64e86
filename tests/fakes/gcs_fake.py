"""A small local fake of the Cloud Storage JSON API, enough for google-cloud-storage's real client.

Point the client at it with STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT (the client then uses anonymous
credentials). Implemented: objects list (prefix, pages), get (metadata, or media with Range), delete, multipart
upload, resumable upload (initiate, chunked PUTs with Content-Range, status query). Objects carry the
size, generation, updated time, md5Hash and crc32c the real service returns; media responses carry
X-Goog-Hash. `ifGenerationMatch` (get, multipart upload) answers 412 when the generation differs (0: the object
must not exist). Errors use the JSON error shape. It can also flip a byte in the next N media responses of an
object (corruption in transit) and records every request.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import google_crc32c

PAGE_SIZE = 1000


@dataclass
class StoredObject:
    data: bytes
    generation: int
    updated: datetime
    content_type: str
    md5: str = ""
    crc32c: str = ""

    def __post_init__(self) -> None:
        self.md5 = base64.b64encode(hashlib.md5(self.data).digest()).decode()  # noqa: S324 - GCS's own field
        self.crc32c = base64.b64encode(google_crc32c.value(self.data).to_bytes(4, "big")).decode()


class GcsFake:
    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, StoredObject]] = {}
        self.requests: list[tuple[str, str]] = []
        self.corrupt_media: dict[str, int] = {}  # object name -> media responses still to damage
        self._uploads: dict[str, tuple[str, str, str, bytearray]] = {}  # id -> bucket, name, type, data
        self._generations = itertools.count(1_700_000_000_000_000)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def create_bucket(self, name: str) -> None:
        self.buckets.setdefault(name, {})

    def put(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        if_generation_match: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            # ifGenerationMatch: the live object's generation must equal it; 0: no live object may exist.
            # Checked and written under one lock, as GCS does: of two conditional writes one wins.
            if if_generation_match is not None:
                current = self.buckets[bucket].get(name)
                if int(if_generation_match) != (current.generation if current else 0):
                    raise _Error(412, "At least one of the pre-conditions you specified did not hold.")
            obj = StoredObject(data, next(self._generations), datetime.now(UTC), content_type)
            self.buckets[bucket][name] = obj
        return self.resource(bucket, name, obj)

    def media_gets(self, name: str) -> int:
        quoted = urllib.parse.quote(name, safe="")
        return sum(1 for m, p in self.requests if m == "GET" and f"/o/{quoted}?" in p and "alt=media" in p)

    def resource(self, bucket: str, name: str, obj: StoredObject) -> dict[str, Any]:
        quoted = urllib.parse.quote(name, safe="")
        stamp = obj.updated.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/{obj.generation}",
            "name": name,
            "bucket": bucket,
            "generation": str(obj.generation),
            "metageneration": "1",
            "contentType": obj.content_type,
            "size": str(len(obj.data)),
            "md5Hash": obj.md5,
            "crc32c": obj.crc32c,
            "timeCreated": stamp,
            "updated": stamp,
            "storageClass": "STANDARD",
            "selfLink": f"{self.url}/storage/v1/b/{bucket}/o/{quoted}",
            "mediaLink": f"{self.url}/download/storage/v1/b/{bucket}/o/{quoted}?generation={obj.generation}&alt=media",
        }


class _Error(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _handler(fake: GcsFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        # --- plumbing ---------------------------------------------------------------------------
        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with fake._lock:
                fake.requests.append((self.command, self.path))
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            try:
                self._route(url.path, query, body)
            except _Error as exc:
                self._json(exc.code, {"error": {"code": exc.code, "message": exc.message, "errors": []}})

        do_GET = do_POST = do_PUT = do_DELETE = _dispatch

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            self._send(
                status, json.dumps(document).encode(), {"Content-Type": "application/json", **(headers or {})}
            )

        def _bucket(self, name: str) -> dict[str, StoredObject]:
            if name not in fake.buckets:
                raise _Error(404, "The specified bucket does not exist.")
            return fake.buckets[name]

        def _object(self, bucket: str, name: str, query: dict[str, str]) -> StoredObject:
            obj = self._bucket(bucket).get(name)
            if obj is None or ("generation" in query and int(query["generation"]) != obj.generation):
                raise _Error(404, f"No such object: {bucket}/{name}")
            if "ifGenerationMatch" in query and int(query["ifGenerationMatch"]) != obj.generation:
                raise _Error(412, "At least one of the pre-conditions you specified did not hold.")
            return obj

        # --- routes -----------------------------------------------------------------------------
        def _route(self, path: str, query: dict[str, str], body: bytes) -> None:
            if m := re.fullmatch(r"/(?:download/)?storage/v1/b/([^/]+)/o/(.+)", path):
                bucket, name = m.group(1), urllib.parse.unquote(m.group(2))
                if self.command not in ("GET", "DELETE"):
                    raise _Error(405, f"{self.command} not supported on objects")
                obj = self._object(bucket, name, query)
                if self.command == "DELETE":  # checkpoint retention
                    with fake._lock:
                        fake.buckets[bucket].pop(name, None)
                    return self._send(204, b"", {})
                if query.get("alt") == "media":
                    return self._media(name, obj)
                return self._json(200, fake.resource(bucket, name, obj))
            if m := re.fullmatch(r"/storage/v1/b/([^/]+)/o", path):
                return self._list(m.group(1), query)
            if m := re.fullmatch(r"/upload/storage/v1/b/([^/]+)/o", path):
                return self._upload(m.group(1), query, body)
            raise _Error(404, f"not found: {self.command} {path}")

        def _list(self, bucket: str, query: dict[str, str]) -> None:
            objects = self._bucket(bucket)
            names = sorted(n for n in objects if n.startswith(query.get("prefix", "")))
            start = int(query.get("pageToken") or 0)
            size = int(query.get("maxResults") or PAGE_SIZE)
            page = names[start : start + size]
            document: dict[str, Any] = {
                "kind": "storage#objects",
                "items": [fake.resource(bucket, n, objects[n]) for n in page],
            }
            if start + size < len(names):
                document["nextPageToken"] = str(start + size)
            self._json(200, document)

        def _media(self, name: str, obj: StoredObject) -> None:
            data, status = obj.data, 200
            headers = {"Content-Type": obj.content_type, "X-Goog-Generation": str(obj.generation)}
            wanted = self.headers.get("Range")
            if wanted and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", wanted)):
                start = int(m.group(1))
                end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
                if start >= len(data) and len(data) > 0:
                    raise _Error(416, "Requested range not satisfiable")
                data, status = data[start : end + 1], 206
                headers["Content-Range"] = f"bytes {start}-{end}/{len(obj.data)}"
            else:
                headers["X-Goog-Hash"] = f"crc32c={obj.crc32c},md5={obj.md5}"
            with fake._lock:
                damage = fake.corrupt_media.get(name, 0) > 0 and bool(data)
                if damage:
                    fake.corrupt_media[name] -= 1
            if damage:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            self._send(status, data, headers)

        def _upload(self, bucket: str, query: dict[str, str], body: bytes) -> None:
            self._bucket(bucket)
            kind = query.get("uploadType")
            if kind == "multipart" and self.command == "POST":
                metadata, data = _split_multipart(self.headers.get("Content-Type", ""), body)
                name = metadata.get("name") or query.get("name", "")
                content_type = metadata.get("contentType", "application/octet-stream")
                return self._json(
                    200, fake.put(bucket, name, data, content_type, query.get("ifGenerationMatch"))
                )
            if kind == "resumable" and self.command == "POST":
                metadata = json.loads(body or b"{}")
                name = metadata.get("name") or query.get("name", "")
                upload_id = hashlib.sha256(f"{bucket}/{name}/{len(fake._uploads)}".encode()).hexdigest()[:24]
                content_type = self.headers.get("X-Upload-Content-Type", "application/octet-stream")
                fake._uploads[upload_id] = (bucket, name, content_type, bytearray())
                location = (
                    f"{fake.url}/upload/storage/v1/b/{bucket}/o?uploadType=resumable&upload_id={upload_id}"
                )
                return self._send(200, b"", {"Location": location})
            if kind == "resumable" and self.command == "PUT":
                return self._resumable_chunk(query.get("upload_id", ""), body)
            raise _Error(400, f"unsupported upload: {self.command} uploadType={kind}")

        def _resumable_chunk(self, upload_id: str, body: bytes) -> None:
            if upload_id not in fake._uploads:
                raise _Error(404, "No such upload session")
            bucket, name, content_type, data = fake._uploads[upload_id]
            m = re.fullmatch(r"bytes (\*|(\d+)-(\d+))/(\*|\d+)", self.headers.get("Content-Range", ""))
            if not m:
                raise _Error(400, "bad Content-Range")
            if m.group(2) is not None:
                if int(m.group(2)) != len(data):
                    raise _Error(400, f"chunk starts at {m.group(2)}, expected {len(data)}")
                data.extend(body)
            total = m.group(4)
            if total != "*" and int(total) == len(data):
                del fake._uploads[upload_id]
                return self._json(200, fake.put(bucket, name, bytes(data), content_type))
            headers = {"Range": f"bytes=0-{len(data) - 1}"} if data else {}
            return self._send(308, b"", headers)

    return Handler


def _split_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON metadata part and the media part of a multipart/related upload (split on the boundary
    by hand: the media part is binary)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise _Error(400, "multipart upload without a boundary")
    delimiter = b"--" + m.group(1).encode()
    pieces = body.split(delimiter)
    parts = [p for p in pieces[1:] if not p.startswith(b"--")]
    if len(parts) != 2:
        raise _Error(400, f"multipart upload with {len(parts)} parts")
    payloads = []
    for part in parts:
        _, _, payload = part.partition(b"\r\n\r\n")
        payloads.append(payload[:-2] if payload.endswith(b"\r\n") else payload)
    return json.loads(payloads[0] or b"{}"), payloads[1]
