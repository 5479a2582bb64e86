"""GCE metadata server client for the node agent: the Spot VM preemption notice.

`instance/preempted` reads FALSE until GCE decides to preempt the VM, then TRUE; the VM is powered off
about 30 s later (the shutdown script runs in that window). The agent long-polls it: the first read
returns the value and its ETag, later reads pass `wait_for_change=true&last_etag=...&timeout_sec=N`, so
a change is seen at once and an unchanged value returns after N seconds (one watch tick).

It offers the same two calls as `pyctl.agent.imds.Imds`, so `pyctl-agent watch` runs unchanged on GCE:
`interruption_notice()` (a Notice whose time is the expected power-off) and `rebalance_recommendation()`
(upcoming host maintenance, which terminates GPU VMs: an early checkpoint). Honours GCE_METADATA_HOST (host[:port]), like Google's libraries.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyctl.agent.imds import ImdsError
from pyctl.clouds.store import open_store
from pyctl.core.checkpoint import Notice, NoticeKind
from pyctl.core.models import parse_bucket
from pyctl.core.object_store import ObjectStore

DEFAULT_HOST = "metadata.google.internal"
PREEMPTED_PATH = "/computeMetadata/v1/instance/preempted"
MAINTENANCE_PATH = "/computeMetadata/v1/instance/maintenance-event"
# Compute Engine powers a preempted Spot VM off about 30 s after the notice.
POWER_OFF_AFTER = timedelta(seconds=30)
# What pyctl plans for: the checkpoint and its upload are done 25 s after the notice (5 s to spare).
CHECKPOINT_BUDGET = timedelta(seconds=25)
# Default upload margin on GCE: the trainer gets 15 s to write its checkpoint, the upload 10 s.
UPLOAD_MARGIN = timedelta(seconds=15)


class MetadataError(ImdsError):
    """The metadata server did not answer as documented (unreachable, 5xx, missing Metadata-Flavor)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class GceMetadata:
    def __init__(
        self,
        host: str | None = None,
        *,
        wait_seconds: float = 2.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        host = host or os.environ.get("GCE_METADATA_HOST") or DEFAULT_HOST
        self.endpoint = (host if host.startswith(("http://", "https://")) else f"http://{host}").rstrip("/")
        self.wait_seconds = max(1, int(round(wait_seconds)))
        self.clock = clock
        self._etag: str | None = None
        self._notice: Notice | None = None
        self._maintenance: Notice | None = None

    def _get(self, path: str, query: dict[str, str], timeout: float) -> tuple[str, str]:
        url = f"{self.endpoint}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        req = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - metadata server URL
                if resp.headers.get("Metadata-Flavor") != "Google":
                    raise MetadataError(f"{url} is not a GCE metadata server (no Metadata-Flavor header)")
                return resp.read().decode().strip(), resp.headers.get("ETag", "")
        except urllib.error.HTTPError as exc:
            raise MetadataError(f"metadata {path} answered {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise MetadataError(f"metadata server {url} unreachable: {exc}") from exc

    def preempted(self) -> bool:
        """The current value; after the first read, waits up to `wait_seconds` for it to change."""
        if self._etag is None:
            value, etag = self._get(PREEMPTED_PATH, {}, timeout=2.0)
        else:
            query = {
                "wait_for_change": "true",
                "last_etag": self._etag,
                "timeout_sec": str(self.wait_seconds),
            }
            value, etag = self._get(PREEMPTED_PATH, query, timeout=self.wait_seconds + 3.0)
        self._etag = etag or None
        return value.upper() == "TRUE"

    def interruption_notice(self) -> Notice | None:
        """The preemption, once seen (the same Notice on every later call, so it is acted on once)."""
        if self._notice is None and self.preempted():
            self._notice = Notice(NoticeKind.INTERRUPTION, self.clock() + POWER_OFF_AFTER, "preempt")
        return self._notice

    def rebalance_recommendation(self) -> Notice | None:
        """Upcoming host maintenance: GPU VMs cannot live-migrate, so `instance/maintenance-event` turning
        TERMINATE_ON_HOST_MAINTENANCE (about an hour ahead) asks for an early checkpoint, like EC2's
        rebalance recommendation. One Notice per event, so the trainer is asked once."""
        value, _ = self._get(MAINTENANCE_PATH, {}, timeout=2.0)
        if value.upper() != "TERMINATE_ON_HOST_MAINTENANCE":
            self._maintenance = None
        elif self._maintenance is None:
            self._maintenance = Notice(NoticeKind.REBALANCE, self.clock(), "host-maintenance")
        return self._maintenance


# --- the node's cloud: where notices come from and where checkpoints go -------------------------------------


@dataclass(frozen=True)
class NodeCloud:
    """What `pyctl-agent watch` / `resume` use on one cloud: the checkpoint store (one instance, S3 or
    GCS) and how long before an interruption the final upload must start."""

    name: str
    store: ObjectStore
    upload_margin: timedelta


def node_cloud(cloud: str | None, bucket: str, prefix: str = "", region: str | None = None) -> NodeCloud:
    """`cloud` ("aws" | "gcp"), or when None: gcp for a `gs://` bucket, else aws."""
    ref = parse_bucket(bucket, prefix, cloud)
    margin = UPLOAD_MARGIN if ref.cloud == "gcp" else timedelta(seconds=30)
    return NodeCloud(ref.cloud, open_store(ref, region=region), margin)
