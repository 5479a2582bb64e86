"""The model-cache helper's GCS JSON-API fake (tests/fakes/gcs_fake.py), plus object DELETE, which
checkpoint retention needs. Served on a second port over the same stored state."""

from __future__ import annotations

import re
import threading
import urllib.parse
from http.server import ThreadingHTTPServer

from fakes import gcs_fake
from fakes.gcs_fake import GcsFake


class GcsFakeWithDelete(GcsFake):
    def __init__(self) -> None:
        super().__init__()
        base = gcs_fake._handler(self)
        fake = self

        class Handler(base):  # type: ignore[misc, valid-type]
            def _route(self, path: str, query: dict[str, str], body: bytes) -> None:
                m = re.fullmatch(r"/storage/v1/b/([^/]+)/o/(.+)", path)
                if self.command == "DELETE" and m:
                    bucket, name = m.group(1), urllib.parse.unquote(m.group(2))
                    if fake.buckets.get(bucket, {}).pop(name, None) is None:
                        return self._json(404, {"error": {"code": 404, "message": f"No such object: {name}"}})
                    return self._send(204, b"", {})
                return super()._route(path, query, body)

        self._delete_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._delete_server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._delete_server.server_address[1]}"
        threading.Thread(target=self._delete_server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._delete_server.shutdown()
        self._delete_server.server_close()
        super().close()
