"""A local fake of the GCE metadata server: `instance/preempted` with `wait_for_change` semantics (a request
whose `last_etag` matches the current value waits until the value changes or `timeout_sec` passes; any
other request answers at once), `instance/maintenance-event` (plain reads), and for a booting node the
instance's id, zone, custom metadata (`instance/attributes/KEY`) and its service account's access token.
Requests without `Metadata-Flavor: Google` get 403."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

PREEMPTED_PATH = "/computeMetadata/v1/instance/preempted"
MAINTENANCE_PATH = "/computeMetadata/v1/instance/maintenance-event"
INSTANCE = "/computeMetadata/v1/instance/"
TOKEN_PATH = INSTANCE + "service-accounts/default/token"


@dataclass
class MetadataFake:
    value: str = "FALSE"
    maintenance: str = "NONE"
    requests: list[dict[str, str]] = field(default_factory=list)
    host: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    instance_id: str = "4567890123456789012"
    zone: str = "projects/123456789012/zones/us-central1-a"
    access_token: str = "ya29.fake-node-access-token"
    _changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def etag(self) -> str:
        return hashlib.sha1(self.value.encode()).hexdigest()[:16]  # noqa: S324 - an ETag, not security

    def preempt(self) -> None:
        with self._changed:
            self.value = "TRUE"
            self._changed.notify_all()

    def answer(self, query: dict[str, str]) -> tuple[str, str]:
        with self._changed:
            self.requests.append(query)
            if query.get("wait_for_change") == "true" and query.get("last_etag") == self.etag:
                timeout = float(query.get("timeout_sec", "60"))
                self._changed.wait_for(lambda: query["last_etag"] != self.etag, timeout=timeout)
            return self.value, self.etag

    def plain(self, path: str) -> str | None:
        """The instance documents a booting node reads (None: 404)."""
        if path == TOKEN_PATH:
            return json.dumps({"access_token": self.access_token, "expires_in": 3599, "token_type": "Bearer"})
        if path == INSTANCE + "id":
            return self.instance_id
        if path == INSTANCE + "zone":
            return self.zone
        if path.startswith(INSTANCE + "attributes/"):
            return self.attributes.get(path.removeprefix(INSTANCE + "attributes/"))
        return None

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                if self.headers.get("Metadata-Flavor") != "Google":
                    status, body, etag = 403, "Missing Metadata-Flavor:Google header.", ""
                elif parsed.path == MAINTENANCE_PATH:
                    status, body, etag = 200, fake.maintenance, ""
                elif parsed.path != PREEMPTED_PATH:
                    document = fake.plain(parsed.path)
                    status, body, etag = (404, "not found", "") if document is None else (200, document, "")
                else:
                    body, etag = fake.answer({k: v[-1] for k, v in parse_qs(parsed.query).items()})
                    status = 200
                data = body.encode()
                self.send_response(status)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", "application/text")
                if etag:
                    self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.host = f"{host}:{server.server_address[1]}"
        return server
