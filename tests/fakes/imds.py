"""A local IMDSv2 server: token PUT, then the spot instance-action and rebalance documents (404 when none)."""

from __future__ import annotations

import json
import secrets
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ImdsState:
    """What the fake IMDS answers; tests set `instance_action` / `rebalance` to issue notices."""

    def __init__(self) -> None:
        self.instance_action: dict[str, str] | None = None
        self.rebalance: dict[str, str] | None = None
        self.tokens: set[str] = set()
        self.unauthorised = 0


class ImdsHandler(BaseHTTPRequestHandler):
    state: ImdsState

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token" or "X-aws-ec2-metadata-token-ttl-seconds" not in self.headers:
            return self._send(400)
        token = secrets.token_hex(8)
        self.state.tokens.add(token)
        self._send(200, token.encode())

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") not in self.state.tokens:
            self.state.unauthorised += 1
            return self._send(401)
        document = {
            "/latest/meta-data/spot/instance-action": self.state.instance_action,
            "/latest/meta-data/events/recommendations/rebalance": self.state.rebalance,
        }.get(self.path)
        if document is None:
            return self._send(404, b"Not Found")
        self._send(200, json.dumps(document).encode())


def imds_server(state: ImdsState) -> ThreadingHTTPServer:
    """A server on a free loopback port answering from `state` (serve_forever it on a thread)."""
    handler = type("Handler", (ImdsHandler,), {"state": state})
    return ThreadingHTTPServer(("127.0.0.1", 0), handler)
