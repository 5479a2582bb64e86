"""A local HTTP fake of the Compute Engine REST API (v1), driven by the real google-cloud-compute client.

Covers what pyctl calls: instances get/list/aggregatedList (with label/status filters and paging),
stop, start; instanceGroupManagers (zonal and regional) get/resize/deleteInstances/listManagedInstances
(the managed instances a test sets with `set_managed`: `lastAttempt.errors` of failed creations); autoscalers get;
zone/region operations get/wait/list. Operations start RUNNING and finish on the first get/wait, so the
client's polling is exercised. Errors are real Compute error documents.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

BASE = "https://www.googleapis.com/compute/v1"
PREFIX = "/compute/v1/projects/"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _field(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


_TERM = re.compile(r'^\(?\s*([\w.\-]+)\s*(=|!=)\s*"?([^"()]*?)"?\s*\)?$')


def matches(doc: dict[str, Any], filter_: str) -> bool:
    """The subset of the Compute filter language pyctl sends: `(a.b = "v") AND (c != "w")`."""
    if not filter_.strip():
        return True
    for term in re.split(r"\s+AND\s+", filter_.strip()):
        match = _TERM.match(term.strip())
        if match is None:
            raise ValueError(f"fake cannot parse filter term {term!r}")
        key, op, value = match.groups()
        actual = _field(doc, key)
        actual = "" if actual is None else str(actual).lower() if isinstance(actual, bool) else str(actual)
        if (actual == value) != (op == "="):
            return False
    return True


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


@dataclass
class ComputeFake:
    project: str
    now: datetime
    instances: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (zone, name)
    groups: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (scope path, name)
    autoscalers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    managed: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)  # (scope path, group)
    operations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (scope path, name)
    no_capacity: set[str] = field(default_factory=set)  # zones where start fails for lack of resources
    unreachable: set[str] = field(default_factory=set)  # zones the aggregated list cannot read
    failures: dict[tuple[str, str], tuple[int, str, str]] = field(default_factory=dict)  # one-shot
    hooks: dict[tuple[str, str], Any] = field(default_factory=dict)  # one-shot, run before the request
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    page_size: int = 3  # small, so paging is exercised
    url: str = ""
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: Iterator[int] = field(default_factory=lambda: iter(range(1000, 10**9)))

    # --- seeding -------------------------------------------------------------------------------------------

    def link(self, path: str) -> str:
        return f"{BASE}/projects/{self.project}/{path}"

    def add_instance(
        self,
        name: str,
        zone: str = "us-central1-a",
        *,
        machine_type: str = "g2-standard-4",
        gpus: int = 1,
        labels: dict[str, str] | None = None,
        status: str = "RUNNING",
        started: datetime | None = None,
        spot: bool = False,
        termination_action: str = "STOP",
        reservation: str | None = None,
        group: str | None = None,
    ) -> dict[str, Any]:
        started = started or self.now - timedelta(hours=2)
        doc: dict[str, Any] = {
            "kind": "compute#instance",
            "id": str(next(self._ids)),
            "name": name,
            "zone": self.link(f"zones/{zone}"),
            "status": status,
            "machineType": self.link(f"zones/{zone}/machineTypes/{machine_type}"),
            "labels": {"auto-shutdown": "true", **(labels or {})},
            "creationTimestamp": rfc3339(started - timedelta(minutes=5)),
            "lastStartTimestamp": rfc3339(started),
            "selfLink": self.link(f"zones/{zone}/instances/{name}"),
            "scheduling": {"onHostMaintenance": "TERMINATE", "automaticRestart": not spot},
            "reservationAffinity": {
                "consumeReservationType": "NO_RESERVATION" if spot else "ANY_RESERVATION"
            },
            "metadata": {"items": [{"key": "startup-script", "value": "#!/bin/bash"}]},
        }
        if gpus:
            doc["guestAccelerators"] = [
                {
                    "acceleratorType": self.link(f"zones/{zone}/acceleratorTypes/nvidia-l4"),
                    "acceleratorCount": gpus,
                }
            ]
        if spot:
            doc["scheduling"].update(
                provisioningModel="SPOT", preemptible=True, instanceTerminationAction=termination_action
            )
        else:
            doc["scheduling"]["provisioningModel"] = "STANDARD"
        if reservation:
            doc["reservationAffinity"] = {
                "consumeReservationType": "SPECIFIC_RESERVATION",
                "key": "compute.googleapis.com/reservation-name",
                "values": [reservation],
            }
        if group:
            doc["metadata"]["items"].append({"key": "created-by", "value": group})
        with self._lock:
            self.instances[(zone, name)] = doc
        return doc

    def add_group(
        self,
        name: str,
        *,
        zone: str | None = "us-central1-a",
        region: str | None = None,
        target_size: int,
        autoscaler_min: int | None = None,
    ) -> str:
        """A managed instance group (zonal, or regional when `region` is given); returns its URL."""
        scope = f"regions/{region}" if region else f"zones/{zone}"
        url = self.link(f"{scope}/instanceGroupManagers/{name}")
        doc: dict[str, Any] = {
            "id": str(next(self._ids)),
            "name": name,
            "targetSize": target_size,
            "selfLink": url,
            "status": {"isStable": True},
        }
        if autoscaler_min is not None:
            scaler = self.link(f"{scope}/autoscalers/{name}-as")
            doc["status"]["autoscaler"] = scaler
            self.autoscalers[(scope, f"{name}-as")] = {
                "name": f"{name}-as",
                "target": url,
                "selfLink": scaler,
                "autoscalingPolicy": {"minNumReplicas": autoscaler_min, "maxNumReplicas": 10},
            }
        self.groups[(scope, name)] = doc
        return url

    def set_managed(self, group_url: str, managed: list[dict[str, Any]]) -> None:
        """The managed instances listManagedInstances answers for a group (ManagedInstance documents, e.g.
        `{"instance": URL, "currentAction": "CREATING", "lastAttempt": {"errors": {"errors": [{"code":
        "ZONE_RESOURCE_POOL_EXHAUSTED", "message": "..."}]}}}`)."""
        scope, name = re.search(
            r"((?:zones|regions)/[^/]+)/instanceGroupManagers/([^/]+)$", group_url
        ).groups()  # type: ignore[union-attr]
        with self._lock:
            self.managed[(scope, name)] = managed

    def preempt(self, name: str, zone: str = "us-central1-a", at: datetime | None = None) -> None:
        """What GCE does to a Spot VM with termination action STOP: TERMINATED, and a preempted operation."""
        with self._lock:
            doc = self.instances[(zone, name)]
            doc["status"] = "TERMINATED"
            doc["lastStopTimestamp"] = rfc3339(at or self.now)
            op = self._operation(f"zones/{zone}", "compute.instances.preempted", doc)
            op.update(status="DONE", insertTime=rfc3339(at or self.now), endTime=rfc3339(at or self.now))

    def before_once(self, method: str, path_suffix: str, hook: Any) -> None:
        """Run `hook()` once, before the next matching request is served and outside the fake's lock:
        another client acting between two of this client's calls (e.g. a second pass at the same time)."""
        self.hooks[(method, path_suffix)] = hook

    def fail_once(self, method: str, path_suffix: str, status: int, reason: str, message: str) -> None:
        self.failures[(method, path_suffix)] = (status, reason, message)

    def status(self, name: str, zone: str = "us-central1-a") -> str:
        return str(self.instances[(zone, name)]["status"])

    def ops(self, method: str, suffix: str) -> list[str]:
        return [path for m, path, _ in self.calls if m == method and path.endswith(suffix)]

    # --- serving -------------------------------------------------------------------------------------------

    def _operation(self, scope: str, kind: str, target: dict[str, Any]) -> dict[str, Any]:
        name = f"operation-{next(self._ids)}"
        op = {
            "kind": "compute#operation",
            "id": str(next(self._ids)),
            "name": name,
            "operationType": kind,
            "status": "RUNNING",
            "targetLink": target["selfLink"],
            "targetId": target["id"],
            "insertTime": rfc3339(self.now),
            "selfLink": self.link(f"{scope}/operations/{name}"),
            ("zone" if scope.startswith("zones/") else "region"): self.link(scope),
        }
        self.operations[(scope, name)] = op
        return op

    def _finish(self, op: dict[str, Any]) -> None:
        if op["status"] == "DONE":
            return
        op["status"] = "DONE"
        op["endTime"] = rfc3339(self.now)
        effect = op.pop("_effect", None)
        if effect is not None:
            effect(op)

    def handle(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            hooks = [k for k in self.hooks if k[0] == method and path.endswith(k[1])]
            hook = self.hooks.pop(hooks[0]) if hooks else None
        if hook is not None:
            hook()
        with self._lock:
            self.calls.append((method, path, {**query, **body}))
            for (m, suffix), failure in list(self.failures.items()):
                if m == method and path.endswith(suffix):
                    del self.failures[(m, suffix)]
                    raise ApiError(*failure)
            if not path.startswith(PREFIX + self.project + "/"):
                raise ApiError(404, "notFound", f"unknown project in {path}")
            rest = path[len(PREFIX + self.project) + 1 :]
            return self._route(method, rest, query, body)

    def _route(self, method: str, rest: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        filter_ = query.get("filter", "")
        if method == "GET" and rest == "aggregated/instances":
            return self._aggregated(filter_, query)
        m = re.fullmatch(r"zones/([^/]+)/instances", rest)
        if m and method == "GET":
            items = [
                d for (z, _), d in sorted(self.instances.items()) if z == m.group(1) and matches(d, filter_)
            ]
            return self._page({"kind": "compute#instanceList"}, "items", items, query)
        m = re.fullmatch(r"zones/([^/]+)/instances/([^/]+)(/stop|/start|/setLabels)?", rest)
        if m:
            zone, name, verb = m.groups()
            doc = self.instances.get((zone, name))
            if doc is None:
                raise ApiError(404, "notFound", f"The resource '{rest}' was not found")
            if method == "GET" and verb is None:
                return {**doc, "labelFingerprint": self._fingerprint(doc)}
            if method == "POST" and verb == "/setLabels":
                # GCE refuses a stale fingerprint (412 conditionNotMet): labels changed since the read.
                if body.get("labelFingerprint") != self._fingerprint(doc):
                    raise ApiError(
                        412,
                        "conditionNotMet",
                        "Labels fingerprint either invalid or resource labels have changed",
                    )
                doc["labels"] = dict(body.get("labels", {}))
                return self._done(f"zones/{zone}", "compute.instances.setLabels", doc)
            if method == "POST" and verb:
                return self._instance_verb(zone, doc, verb[1:])
        m = re.fullmatch(
            r"((?:zones|regions)/[^/]+)/instanceGroupManagers/([^/]+)(/resize|/deleteInstances|/listManagedInstances)?",
            rest,
        )
        if m:
            scope, name, verb = m.groups()
            group = self.groups.get((scope, name))
            if group is None:
                raise ApiError(404, "notFound", f"The resource '{rest}' was not found")
            if method == "GET" and verb is None:
                return group
            if method == "POST" and verb == "/listManagedInstances":  # POST in the API, paged
                items = self.managed.get((scope, name), [])
                return self._page({}, "managedInstances", items, query)
            if method == "POST" and verb == "/resize":
                group["targetSize"] = int(query["size"])
                return self._done(scope, "compute.instanceGroupManagers.resize", group)
            if method == "POST" and verb == "/deleteInstances":
                for url in body.get("instances", []):
                    zone, name_ = re.search(r"zones/([^/]+)/instances/([^/]+)$", url).groups()  # type: ignore[union-attr]
                    self.instances[(zone, name_)]["status"] = "STOPPING"
                    group["targetSize"] -= 1
                return self._done(scope, "compute.instanceGroupManagers.deleteInstances", group)
        m = re.fullmatch(r"((?:zones|regions)/[^/]+)/autoscalers/([^/]+)", rest)
        if m and method == "GET":
            scaler = self.autoscalers.get((m.group(1), m.group(2)))
            if scaler is None:
                raise ApiError(404, "notFound", f"The resource '{rest}' was not found")
            return scaler
        m = re.fullmatch(r"((?:zones|regions)/[^/]+)/operations(?:/([^/]+)(/wait)?)?", rest)
        if m:
            scope, name, wait = m.groups()
            if name is None and method == "GET":
                items = [
                    {k: v for k, v in op.items() if not k.startswith("_")}
                    for (s, _), op in self.operations.items()
                    if s == scope and matches(op, filter_)
                ]
                return self._page({"kind": "compute#operationList"}, "items", items, query)
            op = self.operations.get((scope, name or ""))
            if op is None:
                raise ApiError(404, "notFound", f"The resource '{rest}' was not found")
            if method == "GET" and not wait:
                if op.get("_polled"):
                    self._finish(op)
                op["_polled"] = True
            elif method == "POST" and wait:
                self._finish(op)
            return {k: v for k, v in op.items() if not k.startswith("_")}
        raise ApiError(404, "notFound", f"fake has no route for {method} {rest}")

    @staticmethod
    def _fingerprint(doc: dict[str, Any]) -> str:
        import base64
        import hashlib
        import json

        digest = hashlib.sha256(json.dumps(doc.get("labels", {}), sort_keys=True).encode()).digest()[:8]
        return base64.b64encode(digest).decode()

    def _done(self, scope: str, kind: str, target: dict[str, Any]) -> dict[str, Any]:
        op = self._operation(scope, kind, target)
        return {k: v for k, v in op.items() if not k.startswith("_")}

    def _instance_verb(self, zone: str, doc: dict[str, Any], verb: str) -> dict[str, Any]:
        scope = f"zones/{zone}"
        op = self._operation(scope, verb, doc)
        if verb == "stop":
            doc["status"] = "STOPPING"

            def stopped(_: dict[str, Any]) -> None:
                doc["status"] = "TERMINATED"
                doc["lastStopTimestamp"] = rfc3339(self.now)

            op["_effect"] = stopped
        else:
            if doc["status"] != "TERMINATED":
                raise ApiError(400, "resourceNotReady", f"instance {doc['name']} is {doc['status']}")

            def started(o: dict[str, Any]) -> None:
                if zone in self.no_capacity:
                    o["error"] = {
                        "errors": [
                            {
                                "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                                "message": f"The zone '{self.link(scope)}' does not have enough resources",
                            }
                        ]
                    }
                    o["httpErrorStatusCode"] = 503
                    return
                doc["status"] = "RUNNING"
                doc["lastStartTimestamp"] = rfc3339(self.now)

            op["_effect"] = started
        return {k: v for k, v in op.items() if not k.startswith("_")}

    def _aggregated(self, filter_: str, query: dict[str, str]) -> dict[str, Any]:
        zones = sorted({z for z, _ in self.instances} | {"us-east1-b"})
        flat = [
            (z, d)
            for z in zones
            for (zz, _), d in sorted(self.instances.items())
            if zz == z and matches(d, filter_)
        ]
        start = int(query.get("pageToken") or 0)
        size = min(int(query.get("maxResults") or 500), self.page_size)
        chunk = flat[start : start + size]
        items: dict[str, Any] = {}
        for z in zones:
            mine = [d for zz, d in chunk if zz == z]
            if z in self.unreachable:
                message = f"Scope zones/{z} is unreachable"
                items[f"zones/{z}"] = {"warning": {"code": "UNREACHABLE", "message": message}}
                continue
            items[f"zones/{z}"] = (
                {"instances": mine}
                if mine
                else {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope"}}
            )
        out: dict[str, Any] = {"kind": "compute#instanceAggregatedList", "items": items}
        if start + size < len(flat):
            out["nextPageToken"] = str(start + size)
        return out

    def _page(self, out: dict[str, Any], key: str, items: list[Any], query: dict[str, str]) -> dict[str, Any]:
        start = int(query.get("pageToken") or 0)
        size = min(int(query.get("maxResults") or 500), self.page_size)
        out[key] = items[start : start + size]
        if start + size < len(items):
            out["nextPageToken"] = str(start + size)
        return out

    # --- lifecycle -----------------------------------------------------------------------------------------

    def serve(self) -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _do(self, method: str) -> None:
                parsed = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw.strip() else {}
                try:
                    self._reply(200, fake.handle(method, parsed.path, query, body))
                except ApiError as exc:
                    error = {
                        "code": exc.status,
                        "message": exc.message,
                        "errors": [{"reason": exc.reason, "message": exc.message, "domain": "global"}],
                    }
                    self._reply(exc.status, {"error": error})

            def do_GET(self) -> None:
                self._do("GET")

            def do_POST(self) -> None:
                self._do("POST")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return server
