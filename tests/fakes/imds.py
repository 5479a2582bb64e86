"""A local IMDSv2 server: token PUT, then the instance's identity, region, tags (instance_metadata_tags),
role credentials, and the spot instance-action and rebalance documents (404 when none).

Every GET needs a token from `PUT /latest/api/token` (IMDSv2 only: a tokenless GET gets 401)."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

META = "/latest/meta-data/"


class ImdsState:
    """What the fake IMDS answers; tests set `instance_action` / `rebalance` to issue notices."""

    def __init__(
        self,
        instance_id: str = "i-0123456789abcdef0",
        region: str = "us-east-1",
        tags: dict[str, str] | None = None,
        role: str | None = None,
    ) -> None:
        self.instance_action: dict[str, str] | None = None
        self.rebalance: dict[str, str] | None = None
        self.instance_id = instance_id
        self.region = region
        # None: instance_metadata_tags disabled (IMDS answers 404 under tags/instance).
        self.tags = tags
        self.role = role
        self.tokens: set[str] = set()
        self.unauthorised = 0
        self.paths: list[str] = []

    def document(self, path: str) -> str | None:
        """The body IMDS serves at `path` (plain text, or JSON for the notices and credentials)."""
        if not path.startswith(META):
            return None
        key = path[len(META) :]
        notices = {
            "spot/instance-action": self.instance_action,
            "events/recommendations/rebalance": self.rebalance,
        }
        if key in notices:
            notice = notices[key]
            return None if notice is None else json.dumps(notice)
        if key == "instance-id":
            return self.instance_id
        if key == "placement/region":
            return self.region
        if key == "placement/availability-zone":
            return f"{self.region}a"
        if key.startswith("tags/instance") and self.tags is not None:
            name = key.removeprefix("tags/instance").strip("/")
            return "\n".join(sorted(self.tags)) if not name else self.tags.get(name)
        if key.rstrip("/") == "iam/security-credentials" and self.role:
            return self.role
        if self.role and key == f"iam/security-credentials/{self.role}":
            expires = (datetime.now(UTC) + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
            return json.dumps(
                {
                    "Code": "Success",
                    "LastUpdated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "Type": "AWS-HMAC",
                    "AccessKeyId": "ASIAFAKENODEROLE0001",
                    "SecretAccessKey": "fake-node-role-secret-key",
                    "Token": "fake-node-role-session-token",
                    "Expiration": expires,
                }
            )
        return None


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
        self.state.paths.append(self.path)
        document = self.state.document(self.path)
        if document is None:
            return self._send(404, b"Not Found")
        self._send(200, document.encode())


def imds_server(state: ImdsState, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server on `host:port` (default a free loopback port) answering from `state` (serve_forever it on
    a thread)."""
    handler = type("Handler", (ImdsHandler,), {"state": state})
    return ThreadingHTTPServer((host, port), handler)
