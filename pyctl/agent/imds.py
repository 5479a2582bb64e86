"""IMDSv2 client for the node agent: a session token, then the spot interruption notice and the rebalance
recommendation. Honours AWS_EC2_METADATA_SERVICE_ENDPOINT (tests and emulators point it at a local server).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from pyctl.core.checkpoint import Notice

DEFAULT_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 21600
_TOKEN_REFRESH_MARGIN = 60
INSTANCE_ACTION_PATH = "/latest/meta-data/spot/instance-action"
REBALANCE_PATH = "/latest/meta-data/events/recommendations/rebalance"


class ImdsError(RuntimeError):
    """IMDS did not answer as documented (unreachable, 5xx, malformed JSON)."""


class Imds:
    def __init__(self, endpoint: str | None = None, timeout: float = 1.0) -> None:
        base = endpoint or os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or DEFAULT_ENDPOINT
        if not base.startswith(("http://", "https://")):
            raise ImdsError(f"IMDS endpoint {base!r} must be an http(s) URL")
        self.endpoint = base.rstrip("/")
        self.timeout = timeout
        self._token: str | None = None
        self._token_expires = 0.0

    def _request(self, req: urllib.request.Request) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - IMDS URL
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise ImdsError(f"IMDS {req.full_url} unreachable: {exc}") from exc

    def token(self) -> str:
        if self._token is None or time.monotonic() >= self._token_expires:
            req = urllib.request.Request(  # noqa: S310 - endpoint checked to be http(s) in __init__
                f"{self.endpoint}/latest/api/token",
                method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
            )
            status, body = self._request(req)
            if status != 200:
                raise ImdsError(f"IMDS token request answered {status}")
            self._token = body.decode().strip()
            self._token_expires = time.monotonic() + TOKEN_TTL_SECONDS - _TOKEN_REFRESH_MARGIN
        return self._token

    def get_json(self, path: str) -> dict[str, Any] | None:
        """GET a metadata path as JSON; None on 404 (the documented "nothing to report")."""
        for attempt in range(2):
            req = urllib.request.Request(  # noqa: S310 - endpoint checked to be http(s) in __init__
                f"{self.endpoint}{path}", headers={"X-aws-ec2-metadata-token": self.token()}
            )
            status, body = self._request(req)
            if status == 401 and attempt == 0:
                self._token = None  # expired or rotated token: fetch a new one once
                continue
            if status == 404:
                return None
            if status != 200:
                raise ImdsError(f"IMDS {path} answered {status}")
            try:
                document = json.loads(body)
            except ValueError as exc:
                raise ImdsError(f"IMDS {path} is not JSON: {exc}") from exc
            if not isinstance(document, dict):
                raise ImdsError(f"IMDS {path} is not a JSON object")
            return document
        raise ImdsError(f"IMDS {path} refused a fresh token")

    def interruption_notice(self) -> Notice | None:
        document = self.get_json(INSTANCE_ACTION_PATH)
        return _parse(Notice.interruption, document, INSTANCE_ACTION_PATH)

    def rebalance_recommendation(self) -> Notice | None:
        document = self.get_json(REBALANCE_PATH)
        return _parse(Notice.rebalance, document, REBALANCE_PATH)


def _parse(
    parse: Callable[[dict[str, Any]], Notice], document: dict[str, Any] | None, path: str
) -> Notice | None:
    if not document:
        return None
    try:
        return parse(document)
    except (KeyError, ValueError, TypeError) as exc:
        raise ImdsError(f"IMDS {path} is not a documented notice: {document!r} ({exc})") from exc
