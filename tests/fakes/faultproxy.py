"""A seeded, reproducible fault-injecting HTTP proxy between an SDK and a fake (moto, the GCP REST fakes).

boto3 (or a google-cloud REST client) talks to `proxy.url`; every request is classified into an operation
("ec2:StopInstances", "dynamodb:PutItem", "monitoring:GetMetricData", "s3:GetObject",
"compute:instances.stop", ...) and either forwarded unchanged or hit by a fault:

    throttle      the protocol's real throttling answer (see _THROTTLE): EC2 RequestLimitExceeded (HTTP 503),
                  CloudWatch/Auto Scaling/SNS/STS Throttling (400), DynamoDB/SSM/SQS ThrottlingException (400),
                  S3 SlowDown (503), Lambda TooManyRequestsException (429), GCP 429 RESOURCE_EXHAUSTED
    500, 503      InternalError / ServiceUnavailable in the protocol's error shape
    html502       an HTML 502 page as a load balancer sends it (starts with a doctype, not well-formed XML):
                  botocore's XML and CBOR parsers raise ResponseParserError on it
    html502_plain nginx's bare `<html>` 502 page: botocore turns it into a ClientError with code "502"
    delay         2 s (`delay_seconds`), then forwarded
    drop          the connection is closed before the request reaches the fake (nothing applied)
    lost_answer   forwarded, the fake applies it, then the connection is closed without an answer
    truncate      the fake's answer, its body cut in half (Content-Length kept, so the client sees a short read)

Decisions are reproducible: a random fault for the n-th call of an operation depends only on
(seed, operation, n), not on how threads interleave between operations. `once()` queues exact faults.

The operation of an AWS request comes from its SigV4 credential scope (the signing name) and the
protocol's own marker: the form's Action (query, ec2), X-Amz-Target (json), the /operation/ path segment
(smithy-rpc-v2-cbor) or the service model's request URI templates (rest-xml, rest-json). AWS protocol
error shapes: https://smithy.io/2.0/aws/protocols/ and the services' "Common Errors" API reference pages
(EC2: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import re
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("throttle", "500", "503", "html502", "html502_plain", "delay", "drop", "lost_answer", "truncate")
# Hop-by-hop headers, and the two BaseHTTPRequestHandler.send_response writes itself.
_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "upgrade",
    "server",
    "date",
}

_HTML_502 = (
    b"<!DOCTYPE html>\r\n<html><head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>awselb/2.0</center>\r\n</body></html>\r\n"
)
_HTML_502_PLAIN = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

# (code, HTTP status, message) per signing name for "throttle"; the rest use the protocol's default.
_THROTTLE: dict[str, tuple[str, int, str]] = {
    "ec2": ("RequestLimitExceeded", 503, "Request limit exceeded."),
    "s3": ("SlowDown", 503, "Please reduce your request rate."),
    "lambda": ("TooManyRequestsException", 429, "Rate exceeded"),
    "dynamodb": ("ThrottlingException", 400, "Rate of requests exceeds the allowed throughput."),
    "ssm": ("ThrottlingException", 400, "Rate exceeded"),
    "secretsmanager": ("ThrottlingException", 400, "Rate exceeded"),
    "sqs": ("ThrottlingException", 400, "Rate exceeded"),
    "events": ("ThrottlingException", 400, "Rate exceeded"),
}
_THROTTLE_DEFAULT = ("Throttling", 400, "Rate exceeded")  # query protocol and CloudWatch


@dataclass(frozen=True)
class Call:
    operation: str
    fault: str | None
    status: int | None  # what the client was answered; None: no answer (drop, lost_answer)


# --- classification -----------------------------------------------------------------------------------

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_CBOR_PATH = re.compile(r"/service/[^/]+/operation/([A-Za-z0-9]+)$")


def _aws_operation(method: str, path: str, headers: Any, body: bytes) -> str | None:
    found = _SCOPE.search(headers.get("Authorization", ""))
    if not found:
        return None
    service = found.group(1)
    target = headers.get("X-Amz-Target")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    split = urllib.parse.urlsplit(path)
    cbor = _CBOR_PATH.search(split.path)
    if cbor:
        return f"{service}:{cbor.group(1)}"
    if "x-www-form-urlencoded" in headers.get("Content-Type", ""):
        action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return f"{service}:{action[0]}"
    action = urllib.parse.parse_qs(split.query).get("Action")
    if action:
        return f"{service}:{action[0]}"
    return f"{service}:{_rest_operation(service, method, split, headers) or method}"


_Route = tuple[str, re.Pattern[str], frozenset[str], frozenset[str], int, str]
_REST_ROUTES: dict[str, list[_Route]] = {}
_ROUTES_LOCK = threading.Lock()


def _routes(service: str) -> list[_Route]:
    """(method, path regex, required query keys, required headers, specificity, operation) from botocore's
    service model (S3's CopyObject and PutObject differ only by the required x-amz-copy-source header)."""
    with _ROUTES_LOCK:
        if service not in _REST_ROUTES:
            import botocore.session

            session = botocore.session.get_session()
            name = {"monitoring": "cloudwatch"}.get(service, service)
            try:
                model = session.get_service_model(name)
            except Exception:
                _REST_ROUTES[service] = []
                return []
            routes = []
            for op_name in model.operation_names:
                op = model.operation_model(op_name)
                http_def = op.http
                shape = op.input_shape
                required = frozenset(
                    shape.members[m].serialization["name"].lower()
                    for m in (shape.required_members if shape else [])
                    if shape.members[m].serialization.get("location") == "header"
                )
                uri = http_def.get("requestUri", "/")
                path, _, query = uri.partition("?")
                keys = frozenset(q.split("=", 1)[0] for q in query.split("&") if q)
                regex = ""
                for piece in re.split(r"(\{[^}]+\})", path):
                    if piece.startswith("{"):
                        regex += "(.+)" if piece.endswith("+}") else "([^/]+)"
                    else:
                        regex += re.escape(piece)
                literal = len(re.sub(r"\{[^}]+\}", "", path))
                score = literal + 100 * len(keys) + 100 * len(required)
                routes.append(
                    (http_def["method"], re.compile(f"^{regex}/?$"), keys, required, score, op_name)
                )
            _REST_ROUTES[service] = routes
        return _REST_ROUTES[service]


def _rest_operation(service: str, method: str, split: urllib.parse.SplitResult, headers: Any) -> str | None:
    query_keys = set(urllib.parse.parse_qs(split.query, keep_blank_values=True))
    present = {k.lower() for k in headers}
    best: tuple[int, str] | None = None
    for route_method, regex, keys, required, score, op_name in _routes(service):
        matches = route_method == method and keys <= query_keys and required <= present
        if matches and regex.match(split.path) and (best is None or score > best[0]):
            best = (score, op_name)
    return best[1] if best else None


_GCP_COLLECTION = re.compile(
    r"/(instances|instanceGroupManagers|regionInstanceGroupManagers|autoscalers|operations|b|o)(?:/([^/?]+))?(?:/(?!o$)([A-Za-z]+))?$"
)  # (?!o$): `/b/B/o` (list, upload) is the objects collection, not a verb "o" of bucket B


def _gcp_operation(method: str, path: str) -> str:
    """compute:instances.stop, compute:instances.list, storage:objects.get, storage:objects.insert, ..."""
    split = urllib.parse.urlsplit(path)
    p = split.path
    api = "storage" if p.startswith(("/storage/", "/upload/storage/", "/download/storage/")) else "compute"
    names = {"b": "buckets", "o": "objects"}
    found = _GCP_COLLECTION.search(p)
    if not found:
        tail = p.rstrip("/").rsplit("/", 1)[-1]
        return f"{api}:{tail}.{method.lower()}"
    collection, item, verb = found.groups()
    collection = names.get(collection, collection)
    if verb:
        return f"{api}:{collection}.{verb}"
    if item is None:
        return f"{api}:{collection}.{'insert' if method == 'POST' else 'list'}"
    return f"{api}:{collection}.{ {'GET': 'get', 'DELETE': 'delete', 'PATCH': 'patch', 'PUT': 'update', 'POST': 'insert'}.get(method, method.lower()) }"


# --- error bodies -------------------------------------------------------------------------------------


def _cbor_text(value: str) -> bytes:
    raw = value.encode()
    return _cbor_head(3, len(raw)) + raw


def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    if length < 256:
        return bytes([major << 5 | 24, length])
    return bytes([major << 5 | 25]) + length.to_bytes(2, "big")


def _cbor_map(items: dict[str, str]) -> bytes:
    out = _cbor_head(5, len(items))
    for key, value in items.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out


def _error_answer(
    service: str, operation: str, headers: Any, fault: str
) -> tuple[int, dict[str, str], bytes]:
    if fault == "throttle":
        code, status, message = _THROTTLE.get(service, _THROTTLE_DEFAULT)
    elif fault == "500":
        code, status, message = (
            "InternalError" if service in ("ec2", "s3") else "InternalFailure",
            500,
            "An internal error has occurred.",
        )
    else:
        code, status, message = (
            "Unavailable" if service == "ec2" else "ServiceUnavailable",
            503,
            "The service is unavailable.",
        )
    request_id = hashlib.sha256(f"{operation}{time.time_ns()}".encode()).hexdigest()[:32]
    if headers.get("X-Amz-Target"):  # json protocol
        body = json.dumps({"__type": f"com.amazonaws.{service}#{code}", "message": message}).encode()
        return status, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id}, body
    if "smithy-protocol" in {k.lower() for k in headers}:  # smithy-rpc-v2-cbor (CloudWatch)
        body = _cbor_map({"__type": f"com.amazonaws.cloudwatch#{code}", "message": message})
        return (
            status,
            {
                "Content-Type": "application/cbor",
                "smithy-protocol": "rpc-v2-cbor",
                "x-amzn-RequestId": request_id,
            },
            body,
        )
    if service == "ec2":
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        ).encode()
        return status, {"Content-Type": "text/xml;charset=UTF-8"}, body
    if service == "s3":
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>'.encode()
        return status, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, body
    if service == "lambda":  # rest-json
        body = json.dumps({"Type": "User", "message": message}).encode()
        return (
            status,
            {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": request_id},
            body,
        )
    body = (  # query protocol
        f"<ErrorResponse><Error><Type>{'Sender' if status < 500 else 'Receiver'}</Type><Code>{code}</Code>"
        f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
    return status, {"Content-Type": "text/xml"}, body


def _gcp_error_answer(fault: str) -> tuple[int, dict[str, str], bytes]:
    if fault == "throttle":
        status, state, reason, message = 429, "RESOURCE_EXHAUSTED", "rateLimitExceeded", "Rate Limit Exceeded"
    elif fault == "500":
        status, state, reason, message = 500, "INTERNAL", "backendError", "Internal error. Please try again."
    else:
        status, state, reason, message = (
            503,
            "UNAVAILABLE",
            "backendError",
            "The service is currently unavailable.",
        )
    doc = {
        "error": {
            "code": status,
            "message": message,
            "status": state,
            "errors": [{"reason": reason, "message": message, "domain": "global"}],
        }
    }
    return status, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(doc).encode()


# --- the proxy ----------------------------------------------------------------------------------------


class FaultProxy:
    def __init__(self, upstream: str, *, seed: int = 0, delay_seconds: float = 2.0) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.seed = seed
        self.delay_seconds = delay_seconds
        self.calls: list[Call] = []
        self._rates: list[tuple[float, frozenset[str] | None, tuple[str, ...]]] = []
        self._queued: dict[str, deque[str]] = {}
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # configuration
    def rate(
        self, rate: float, *, operations: Iterable[str] | None = None, faults: Iterable[str] | None = None
    ) -> None:
        """Hit `rate` of the matching calls (every operation when `operations` is None) with a random fault."""
        chosen = tuple(sorted(faults)) if faults is not None else FAULTS
        unknown = set(chosen) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        with self._lock:
            self._rates.append((rate, frozenset(operations) if operations is not None else None, chosen))

    def once(self, operation: str, *faults: str) -> None:
        """The next calls of `operation` get exactly these faults, in order."""
        if set(faults) - set(FAULTS):
            raise ValueError(f"unknown faults {faults}; known: {FAULTS}")
        with self._lock:
            self._queued.setdefault(operation, deque()).extend(faults)

    def clear(self) -> None:
        with self._lock:
            self._rates.clear()
            self._queued.clear()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(c.operation for c in self.calls))

    def faults_injected(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(c.fault for c in self.calls if c.fault))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # decisions
    def _decide(self, operation: str) -> str | None:
        with self._lock:
            n = self._seen[operation]
            self._seen[operation] += 1
            queue = self._queued.get(operation)
            if queue:
                return queue.popleft()
            for rate, operations, faults in reversed(self._rates):
                if operations is None or operation in operations:
                    rng = random.Random(f"{self.seed}:{operation}:{n}")
                    return rng.choice(faults) if rng.random() < rate else None
            return None

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(
                self, status: int, headers: dict[str, str], body: bytes, *, cut: bool = False
            ) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if self.command == "HEAD" and any(k.lower() == "content-length" for k in headers):
                    pass  # the object's length, as the fake answered it
                else:
                    self.send_header("Content-Length", str(len(body)))
                if cut:
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body[: len(body) // 2] if cut else body)
                if cut:
                    self.wfile.flush()
                    self.close_connection = True

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in _HOP_HEADERS | {"content-length"}
                    }
                    if body or self.command in ("POST", "PUT", "PATCH"):
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_HEADERS]
                    if self.command != "HEAD":
                        kept = [(k, v) for k, v in kept if k.lower() != "content-length"]
                    return resp.status, kept, data
                finally:
                    conn.close()

            def _handle(self) -> None:
                body = self._body()
                aws = _aws_operation(self.command, self.path, self.headers, body)
                operation = aws or _gcp_operation(self.command, self.path)
                service = operation.split(":", 1)[0]
                fault = proxy._decide(operation)
                if fault == "drop":
                    proxy._record(Call(operation, fault, None))
                    self.close_connection = True
                    return
                if fault in ("throttle", "500", "503"):
                    status, headers, data = (
                        _error_answer(service, operation, self.headers, fault)
                        if aws
                        else _gcp_error_answer(fault)
                    )
                    proxy._record(Call(operation, fault, status))
                    self._answer(status, headers, data)
                    return
                if fault in ("html502", "html502_plain"):
                    proxy._record(Call(operation, fault, 502))
                    self._answer(
                        502,
                        {"Content-Type": "text/html"},
                        _HTML_502 if fault == "html502" else _HTML_502_PLAIN,
                    )
                    return
                if fault == "delay":
                    time.sleep(proxy.delay_seconds)
                status, headers, data = self._forward(body)
                if fault == "lost_answer":
                    proxy._record(Call(operation, fault, None))
                    self.close_connection = True
                    return
                proxy._record(Call(operation, fault, status))
                self._answer(status, dict(headers), data, cut=fault == "truncate")

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle  # noqa: N815

        return Handler
