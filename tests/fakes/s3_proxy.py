"""An HTTP proxy in front of the moto server that can damage the network path on purpose.

It forwards every request unchanged and records (method, path, Range). For chosen object keys it can
flip a byte in the next N GET bodies (corruption in transit), cut the next N GET bodies off half-way
(a dropped connection), or hold GETs forever (a fetch that hangs, to be killed). Real HTTP on both sides: boto3 talks to it through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class S3Proxy:
    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.requests: list[tuple[str, str, str | None]] = []
        self.corrupt: dict[str, int] = {}  # key suffix -> GET responses still to damage
        self.stall: set[str] = set()  # key suffixes whose GETs never answer
        self.cut: dict[str, int] = {}  # key suffix -> GET responses still to cut off half-way
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def gets(self, suffix: str) -> int:
        """How many GETs of an object whose path ends with `suffix` went through."""
        return sum(
            1
            for m, p, _ in self.requests
            if m == "GET" and urllib.parse.unquote(p.split("?")[0]).endswith(suffix)
        )

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def _matching(self, table: set[str] | dict[str, int], path: str) -> str | None:
        key = urllib.parse.unquote(path.split("?")[0])
        return next((s for s in table if key.endswith(s)), None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    proxy.requests.append((self.command, self.path, self.headers.get("Range")))
                damage = cut = False
                if self.command == "GET":
                    if proxy._matching(proxy.stall, self.path):
                        proxy.release.wait()
                        self.close_connection = True
                        return
                    with proxy._lock:
                        hit = proxy._matching(proxy.corrupt, self.path)
                        if hit and proxy.corrupt[hit] > 0:
                            proxy.corrupt[hit] -= 1
                            damage = True
                        hit = proxy._matching(proxy.cut, self.path)
                        if hit and proxy.cut[hit] > 0:
                            proxy.cut[hit] -= 1
                            cut = True
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if damage and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP_HEADERS and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if cut:  # the promised Content-Length never arrives: the connection drops mid-body
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler
