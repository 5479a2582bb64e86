"""A stand-in Terraform provider: speaks plugin protocol 6 and serves a real provider's schema.

Terraform core starts it like any provider (go-plugin handshake over a unix socket, AutoMTLS with a server
certificate only), or a test session starts it once and hands Terraform its address through
`TF_REATTACH_PROVIDERS` (`--reattach`: plain gRPC, prints the reattach JSON and stays up).

    python -m tfprovider.server --provider aws [--reattach]

Environment: `TFSTANDIN_FIXTURES` names a JSON file of data-source fixtures (read at each configure), and
`TFSTANDIN_LOG` a file that gets one JSON line per RPC (for tests that check what Terraform asked).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import signal
import sys
import tempfile
import threading
import traceback
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "tfprovider"  # noqa: A001

import contextlib

from . import behaviour, cty, rules, stubs  # noqa: E402
from .schema import Block, load  # noqa: E402

MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"

_pb = stubs.load()
pb = _pb["tfplugin6_pb2"]
pb_grpc = _pb["tfplugin6_pb2_grpc"]

_NESTING = {"single": 1, "list": 2, "set": 3, "map": 4}


# ---------------------------------------------------------------- schema -> protocol


def _proto_block(block: Block) -> Any:
    out = pb.Schema.Block(version=0)
    for name, a in block.attributes.items():
        attr = pb.Schema.Attribute(
            name=name,
            required=a.required,
            optional=a.optional,
            computed=a.computed,
            sensitive=a.sensitive,
            write_only=a.write_only,
        )
        if a.nested is not None:
            nested = _proto_block(a.nested)
            attr.nested_type.CopyFrom(
                pb.Schema.Object(attributes=nested.attributes, nesting=_NESTING[a.nesting])
            )
        else:
            attr.type = cty.type_bytes(a.type)
        out.attributes.append(attr)
    for name, b in block.blocks.items():
        out.block_types.append(
            pb.Schema.NestedBlock(
                type_name=name,
                block=_proto_block(b.block),
                nesting=_NESTING[b.nesting],
                min_items=b.min_items,
                max_items=b.max_items,
            )
        )
    return out


def schema_response(provider: str) -> Any:
    """GetProviderSchema's answer, built once per schema version and cached on disk (~1 s to build)."""
    schema = load(provider)
    digest = hashlib.sha256(schema.digest.encode() + Path(__file__).read_bytes()).hexdigest()[:16]
    cache = Path(__file__).resolve().parent / "_gen" / f"schema-{provider}-{digest}.pb"
    if cache.exists():
        return pb.GetProviderSchema.Response.FromString(cache.read_bytes())
    resp = pb.GetProviderSchema.Response()
    resp.provider.CopyFrom(pb.Schema(version=0, block=_proto_block(schema.provider())))
    for t in schema.types("resources"):
        resp.resource_schemas[t].CopyFrom(pb.Schema(version=0, block=_proto_block(schema.resource(t))))
    for t in schema.types("data_sources"):
        resp.data_source_schemas[t].CopyFrom(pb.Schema(version=0, block=_proto_block(schema.data_source(t))))
    for t in schema.types("ephemeral_resources"):
        block = schema.block("ephemeral_resources", t)
        resp.ephemeral_resource_schemas[t].CopyFrom(pb.Schema(version=0, block=_proto_block(block)))
    resp.server_capabilities.plan_destroy = True
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(resp.SerializeToString())
    tmp.replace(cache)
    return resp


# ---------------------------------------------------------------- the service


def _diag(summary: str, detail: str = "", path: tuple[str, ...] = (), error: bool = True) -> Any:
    d = pb.Diagnostic(severity=1 if error else 2, summary=summary, detail=detail)
    for step in path:
        d.attribute.steps.append(pb.AttributePath.Step(attribute_name=step))
    return d


class StandinProvider(pb_grpc.ProviderServicer):  # type: ignore[misc]
    def __init__(self, provider: str) -> None:
        self.name = provider
        self.schema = load(provider)
        self._schema_response: Any = None
        self._lock = threading.Lock()
        self.config: dict[str, Any] = {}
        self.fixtures: dict[str, Any] = {}
        log = os.environ.get("TFSTANDIN_LOG")
        self._log = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115

    # -- helpers
    def _record(self, rpc: str, type_name: str = "", **extra: Any) -> None:
        if self._log is not None:
            with self._lock:
                self._log.write(
                    json.dumps({"provider": self.name, "rpc": rpc, "type": type_name, **extra}) + "\n"
                )
                self._log.flush()

    def _block(self, kind: str, type_name: str) -> Block:
        return self.schema.block(kind, type_name)

    def _validate(self, response: Any, block: Block, raw: bytes, type_name: str = "") -> Any:
        """What a provider refuses that core does not: read-only attributes set, documented API rules."""
        config = cty.decode(raw, block.implied_type())
        problems = behaviour.read_only_violations(block, config) + rules.violations(type_name, config)
        for summary, detail, path in problems:
            response.diagnostics.append(_diag(summary, detail, path))
        return response

    # -- metadata and schema
    def GetMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        resp = pb.GetMetadata.Response()
        resp.server_capabilities.plan_destroy = True
        for t in self.schema.types("resources"):
            resp.resources.append(pb.GetMetadata.ResourceMetadata(type_name=t))
        for t in self.schema.types("data_sources"):
            resp.data_sources.append(pb.GetMetadata.DataSourceMetadata(type_name=t))
        for t in self.schema.types("ephemeral_resources"):
            resp.ephemeral_resources.append(pb.GetMetadata.EphemeralMetadata(type_name=t))
        return resp

    def GetProviderSchema(self, request: Any, context: Any) -> Any:  # noqa: N802
        with self._lock:
            if self._schema_response is None:
                self._schema_response = schema_response(self.name)
        self._record("GetProviderSchema")
        return self._schema_response

    def GetResourceIdentitySchemas(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.GetResourceIdentitySchemas.Response()

    def GetFunctions(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.GetFunctions.Response()

    # -- provider configuration
    def ValidateProviderConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._validate(
            pb.ValidateProviderConfig.Response(), self.schema.provider(), request.config.msgpack
        )

    def ConfigureProvider(self, request: Any, context: Any) -> Any:  # noqa: N802
        block = self.schema.provider()
        config = cty.decode(request.config.msgpack, block.implied_type()) or {}
        self.config = cty.to_plain(config)
        fixtures = os.environ.get("TFSTANDIN_FIXTURES")
        self.fixtures = json.loads(Path(fixtures).read_text()) if fixtures and Path(fixtures).exists() else {}
        self._record("ConfigureProvider", config=self.config)
        return pb.ConfigureProvider.Response()

    # -- managed resources
    def ValidateResourceConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        block = self._block("resources", request.type_name)
        self._record("ValidateResourceConfig", request.type_name)
        return self._validate(
            pb.ValidateResourceConfig.Response(), block, request.config.msgpack, request.type_name
        )

    def UpgradeResourceState(self, request: Any, context: Any) -> Any:  # noqa: N802
        block = self._block("resources", request.type_name)
        ty = block.implied_type()
        resp = pb.UpgradeResourceState.Response()
        if not request.raw_state.json:
            resp.diagnostics.append(_diag("Legacy flatmap state is not supported by the stand-in provider"))
            return resp
        value = cty.from_json(json.loads(request.raw_state.json), ty)
        resp.upgraded_state.msgpack = cty.encode(value, ty)
        return resp

    def ReadResource(self, request: Any, context: Any) -> Any:  # noqa: N802
        # No drift: what was applied is what exists.
        self._record("ReadResource", request.type_name)
        return pb.ReadResource.Response(new_state=request.current_state, private=request.private)

    def PlanResourceChange(self, request: Any, context: Any) -> Any:  # noqa: N802
        block = self._block("resources", request.type_name)
        ty = block.implied_type()
        prior = cty.decode(request.prior_state.msgpack, ty)
        proposed = cty.decode(request.proposed_new_state.msgpack, ty)
        config = cty.decode(request.config.msgpack, ty)
        planned = behaviour.plan(block, request.type_name, self.config, prior, proposed, config)
        self._record("PlanResourceChange", request.type_name, create=prior is None, destroy=proposed is None)
        resp = pb.PlanResourceChange.Response(planned_private=request.prior_private)
        resp.planned_state.msgpack = cty.encode(planned, ty)
        return resp

    def ApplyResourceChange(self, request: Any, context: Any) -> Any:  # noqa: N802
        block = self._block("resources", request.type_name)
        ty = block.implied_type()
        planned = cty.decode(request.planned_state.msgpack, ty)
        new = behaviour.apply(block, request.type_name, self.config, planned)
        self._record("ApplyResourceChange", request.type_name, value=cty.to_plain(new))
        resp = pb.ApplyResourceChange.Response(private=request.planned_private)
        resp.new_state.msgpack = cty.encode(new, ty)
        return resp

    def ImportResourceState(self, request: Any, context: Any) -> Any:  # noqa: N802
        resp = pb.ImportResourceState.Response()
        resp.diagnostics.append(_diag("Import is not supported by the stand-in provider"))
        return resp

    def MoveResourceState(self, request: Any, context: Any) -> Any:  # noqa: N802
        resp = pb.MoveResourceState.Response()
        resp.diagnostics.append(_diag("Moving state across resource types is not supported by the stand-in"))
        return resp

    # -- data sources
    def ValidateDataResourceConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        block = self._block("data_sources", request.type_name)
        return self._validate(pb.ValidateDataResourceConfig.Response(), block, request.config.msgpack)

    def ReadDataSource(self, request: Any, context: Any) -> Any:  # noqa: N802
        block = self._block("data_sources", request.type_name)
        ty = block.implied_type()
        config = cty.decode(request.config.msgpack, ty) or {}
        state = behaviour.read_data(block, request.type_name, self.config, config, self.fixtures)
        self._record("ReadDataSource", request.type_name)
        resp = pb.ReadDataSource.Response()
        resp.state.msgpack = cty.encode(state, ty)
        return resp

    # -- ephemeral resources (none of our roots use one; answered so Terraform does not stall)
    def ValidateEphemeralResourceConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ValidateEphemeralResourceConfig.Response()

    def OpenEphemeralResource(self, request: Any, context: Any) -> Any:  # noqa: N802
        resp = pb.OpenEphemeralResource.Response()
        resp.diagnostics.append(_diag("Ephemeral resources are not supported by the stand-in provider"))
        return resp

    def CloseEphemeralResource(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.CloseEphemeralResource.Response()

    def StopProvider(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.StopProvider.Response()


class _Guarded:
    """Every RPC's exception becomes an error diagnostic with the traceback, not a dead plugin."""

    def __init__(self, inner: StandinProvider) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)
        if not callable(fn) or not name[:1].isupper():
            return fn

        def call(request: Any, context: Any) -> Any:
            try:
                return fn(request, context)
            except Exception as exc:  # noqa: BLE001
                resp_type = getattr(pb, name).Response
                resp = resp_type()
                if hasattr(resp, "diagnostics"):
                    resp.diagnostics.append(
                        _diag(f"stand-in provider failed in {name}: {exc}", traceback.format_exc())
                    )
                    return resp
                raise

        return call


# ---------------------------------------------------------------- go-plugin plumbing


def _health_handler() -> grpc.GenericRpcHandler:
    # grpc.health.v1.Health/Check -> HealthCheckResponse{status: SERVING}, encoded by hand (one varint field)
    def check(request: bytes, context: Any) -> bytes:
        return b"\x08\x01"

    handler = grpc.unary_unary_rpc_method_handler(
        check, request_deserializer=lambda b: b, response_serializer=lambda b: b
    )
    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": handler})


class _Controller(_pb["grpc_controller_pb2_grpc"].GRPCControllerServicer):  # type: ignore[misc]
    def __init__(self, stop: threading.Event, reattach: bool) -> None:
        self.stop, self.reattach = stop, reattach

    def Shutdown(self, request: Any, context: Any) -> Any:  # noqa: N802
        if not self.reattach:
            self.stop.set()
        return _pb["grpc_controller_pb2"].Empty()


class _Stdio(_pb["grpc_stdio_pb2_grpc"].GRPCStdioServicer):  # type: ignore[misc]
    def StreamStdio(self, request: Any, context: Any) -> Any:  # noqa: N802
        return iter(())


def _server_certificate() -> tuple[bytes, bytes, bytes]:
    """A self-signed ECDSA certificate for localhost (CA, serverAuth): (key PEM, cert PEM, cert DER)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                key_cert_sign=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        key_pem,
        cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.DER),
    )


def serve(provider: str, reattach: bool) -> int:
    if not reattach:
        if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE:
            print("This binary is a plugin. It is meant to be executed by Terraform.", file=sys.stderr)
            return 1
        versions = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "6").split(",")
        if "6" not in versions:
            print(f"stand-in speaks plugin protocol 6 only, Terraform offers {versions}", file=sys.stderr)
            return 1
    stop = threading.Event()
    sock_dir = tempfile.mkdtemp(prefix="tfstandin-")
    os.chmod(sock_dir, 0o700)
    socket_path = os.path.join(sock_dir, "plugin.sock")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[("grpc.max_send_message_length", 256 << 20), ("grpc.max_receive_message_length", 256 << 20)],
    )
    service = StandinProvider(provider)
    pb_grpc.add_ProviderServicer_to_server(_Guarded(service), server)
    _pb["grpc_controller_pb2_grpc"].add_GRPCControllerServicer_to_server(_Controller(stop, reattach), server)
    _pb["grpc_stdio_pb2_grpc"].add_GRPCStdioServicer_to_server(_Stdio(), server)
    server.add_generic_rpc_handlers([_health_handler()])
    if reattach:
        server.add_insecure_port(f"unix:{socket_path}")
        server.start()
        service.GetProviderSchema(None, None)  # build (or load) the schema before Terraform asks
        info = {
            service.schema.source: {
                "Protocol": "grpc",
                "ProtocolVersion": 6,
                "Pid": os.getpid(),
                "Test": True,
                "Addr": {"Network": "unix", "String": socket_path},
            }
        }
        print(json.dumps(info), flush=True)
    else:
        key_pem, cert_pem, cert_der = _server_certificate()
        server.add_secure_port(f"unix:{socket_path}", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
        server.start()
        cert_b64 = base64.b64encode(cert_der).decode().rstrip("=")
        print(f"1|6|unix|{socket_path}|grpc|{cert_b64}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop(grace=1)
    try:
        os.unlink(socket_path)
        os.rmdir(sock_dir)
    except OSError:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", required=True, choices=["aws", "google", "google-beta"])
    parser.add_argument("--reattach", action="store_true")
    args = parser.parse_args(argv)
    return serve(args.provider, args.reattach)


if __name__ == "__main__":
    sys.exit(main())
