"""Check Terraform configuration against real provider schemas, offline.

The AWS and Google providers cannot be downloaded here, so `terraform validate` cannot run. The schemas in
tests/data/tfschema/ (extracted from the published provider bindings, see its README.md) let this module
check what validate would: every resource / data source / ephemeral type and provider block exists; every
argument and nested block exists at its depth (static and `dynamic` blocks alike); required arguments and
blocks are present; arguments are not written as blocks or blocks as arguments; read-only (computed-only)
attributes are not set; single blocks (max_items 1) are not repeated.

Provider-generic: the type prefix picks the schema (aws_ -> aws, google_ -> google) and a
`provider = google-beta` (or `google-beta.ALIAS`) meta-argument picks google-beta.

Use: `check_paths([Path("infra")])` -> list of Finding; `python tests/terraform/tfschema_check.py infra`.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tfconfig import body_items, is_block, module_dirs, parse_file  # type: ignore[import-not-found]
else:
    from .tfconfig import body_items, is_block, module_dirs, parse_file

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "data" / "tfschema"

# Allowed in every resource / data / ephemeral block whatever the schema says.
META_ARGUMENTS = frozenset(
    {"count", "for_each", "provider", "depends_on", "lifecycle", "provisioner", "connection"}
)
PROVIDER_META_ARGUMENTS = frozenset({"alias", "version"})
DYNAMIC_ARGUMENTS = frozenset({"for_each", "iterator", "labels", "content"})
# Providers without a schema here: their types are not checked (they are small and stable).
UNCHECKED_PROVIDERS = frozenset(
    {"terraform", "archive", "null", "random", "local", "time", "tls", "http", "external", "cloudinit"}
)


@dataclass(frozen=True)
class Finding:
    file: Path
    address: (
        str  # resource address plus the path inside it, e.g. aws_instance.web.metadata_options.http_tokens
    )
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.address}: {self.message}"


@cache
def load_schema(provider: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    with gzip.open(schema_dir / f"{provider}.json.gz", "rt", encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


def available_providers(schema_dir: Path = SCHEMA_DIR) -> frozenset[str]:
    return frozenset(p.name.removesuffix(".json.gz") for p in schema_dir.glob("*.json.gz"))


def provider_of(resource_type: str, provider_meta: Any = None) -> str:
    """The provider (schema name) a type belongs to: its prefix, or the `provider` meta-argument's name."""
    if isinstance(provider_meta, str):
        name = provider_meta.removeprefix("${").removesuffix("}").split(".")[0]
        if name:
            return name
    return resource_type.split("_", 1)[0]


_SECTIONS = {"resource": "resources", "data": "data_sources", "ephemeral": "ephemeral_resources"}


class SchemaChecker:
    def __init__(self, schema_dir: Path = SCHEMA_DIR) -> None:
        self.schema_dir = schema_dir
        self.providers = available_providers(schema_dir)

    def check_file(self, path: Path) -> list[Finding]:
        doc = parse_file(path)
        findings: list[Finding] = []
        for kind, section in _SECTIONS.items():
            for block in doc.get(kind, []):
                for rtype, named in body_items(block):
                    for name, body in body_items(named):
                        prefix = "data." if kind == "data" else ("ephemeral." if kind == "ephemeral" else "")
                        address = f"{prefix}{rtype}.{name}"
                        findings += self._check_typed(path, address, section, rtype, body)
        for block in doc.get("provider", []):
            for name, body in body_items(block):
                findings += self._check_provider(path, name, body)
        return findings

    def _check_typed(
        self, path: Path, address: str, section: str, rtype: str, body: dict[str, Any]
    ) -> list[Finding]:
        provider = provider_of(rtype, body.get("provider"))
        if provider in UNCHECKED_PROVIDERS:
            return []
        if provider not in self.providers:
            return [
                Finding(
                    path, address, f"no schema for provider {provider!r} (have: {sorted(self.providers)})"
                )
            ]
        schema = load_schema(provider, self.schema_dir)[section].get(rtype)
        if schema is None:
            what = section.replace("_", " ").rstrip("s")
            return [Finding(path, address, f"{rtype!r} is not a {what} of provider {provider}")]
        return list(check_body(path, address, schema, body, META_ARGUMENTS))

    def _check_provider(self, path: Path, name: str, body: dict[str, Any]) -> list[Finding]:
        if name in UNCHECKED_PROVIDERS or name not in self.providers:
            return (
                []
                if name in UNCHECKED_PROVIDERS
                else [Finding(path, f"provider.{name}", "no schema for this provider")]
            )
        schema = load_schema(name, self.schema_dir)["provider"]
        return list(check_body(path, f"provider.{name}", schema, body, PROVIDER_META_ARGUMENTS))


def check_body(
    path: Path, address: str, schema: dict[str, Any], body: dict[str, Any], meta: frozenset[str] = frozenset()
) -> Iterator[Finding]:
    attributes: dict[str, Any] = schema.get("attributes", {})
    blocks: dict[str, Any] = schema.get("blocks", {})
    present: set[str] = set()
    for key, value in body_items(body):
        at = f"{address}.{key}"
        if key in meta:
            continue
        if key == "dynamic":
            for dynamic in value:
                for name, dyn_body in body_items(dynamic):
                    present.add(name)
                    yield from _check_dynamic(
                        path, f"{address}.dynamic.{name}", name, blocks, attributes, dyn_body
                    )
            continue
        present.add(key)
        if key in attributes:
            yield from _check_attribute(path, at, attributes[key], value)
        elif key in blocks:
            if not is_block(value):
                yield Finding(path, at, "is a block: write `" + key + " { ... }`, not `" + key + " = ...`")
                continue
            block_schema = blocks[key]
            if block_schema.get("max_items") == 1 and len(value) > 1:
                yield Finding(path, at, f"at most one {key} block is allowed")
            for item in value:
                yield from check_body(path, at, block_schema, item)
        else:
            yield Finding(path, at, "unknown argument or block")
    for key, attr in attributes.items():
        if attr.get("required") and key not in present:
            yield Finding(path, f"{address}.{key}", "required argument is missing")
    for key, block_schema in blocks.items():
        if block_schema.get("required") and key not in present:
            yield Finding(path, f"{address}.{key}", "required block is missing")


def _check_attribute(path: Path, at: str, attr: dict[str, Any], value: Any) -> Iterator[Finding]:
    if attr.get("computed") and not attr.get("optional") and not attr.get("required"):
        yield Finding(path, at, "is read-only (computed by the provider) and cannot be set")
        return
    if attr.get("opaque"):  # a subtree the schema extraction left as `any`
        return
    nested = attr.get("object")
    if is_block(value):
        # Terraform accepts "attributes as blocks" for some legacy object-list attributes (e.g. SG ingress).
        if nested is None or not attr.get("block_syntax_ok"):
            yield Finding(path, at, "is an argument: write `" + at.rsplit(".", 1)[1] + " = ...`, not a block")
            return
        for item in value:
            yield from check_body(path, at, nested, item)
    elif nested is not None:
        # An object (or list of objects) literal: its keys must be attributes of the nested object.
        literals = value if isinstance(value, list) else [value]
        for item in literals:
            if isinstance(item, dict):
                for key, _ in body_items(item):
                    if key not in nested.get("attributes", {}) and key not in nested.get("blocks", {}):
                        yield Finding(path, f"{at}.{key}", "unknown attribute of this object")


def _check_dynamic(
    path: Path, at: str, name: str, blocks: dict[str, Any], attributes: dict[str, Any], body: dict[str, Any]
) -> Iterator[Finding]:
    for key, _ in body_items(body):
        if key not in DYNAMIC_ARGUMENTS:
            yield Finding(
                path,
                f"{at}.{key}",
                "unknown argument of a dynamic block (for_each, iterator, labels, content)",
            )
    if "for_each" not in body:
        yield Finding(path, f"{at}.for_each", "a dynamic block needs for_each")
    if name in blocks:
        schema = blocks[name]
    elif name in attributes and attributes[name].get("object") and attributes[name].get("block_syntax_ok"):
        schema = attributes[name]["object"]
    else:
        yield Finding(path, at, f"{name!r} is not a block here")
        return
    content = body.get("content")
    if not is_block(content):
        yield Finding(path, f"{at}.content", "a dynamic block needs one content block")
        return
    for item in content:
        yield from check_body(path, f"{at}.content", schema, item)


def tf_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += [f for d in module_dirs(path) for f in sorted(d.glob("*.tf"))]
        else:
            files.append(path)
    return files


def check_paths(paths: Iterable[Path], schema_dir: Path = SCHEMA_DIR) -> list[Finding]:
    """Check every .tf file under `paths` (directories are searched recursively)."""
    checker = SchemaChecker(schema_dir)
    return [finding for f in tf_files(paths) for finding in checker.check_file(f)]


def main(argv: list[str]) -> int:
    findings = check_paths([Path(a) for a in argv] or [Path("infra")])
    for finding in findings:
        print(finding)
    print(f"{len(findings)} problem(s)", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
