"""The real provider schemas (tests/data/tfschema) as a model the stand-in serves and plans with.

Each attribute's type is its exact `cty` entry where the data has one (recovered from the provider bindings);
otherwise it is derived from the older `type` notation, and a computed-only attribute with no type at all is
served as a string (what almost all of them are: ids, ARNs, names, URLs).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .cty import CtyType, has_dynamic

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "data" / "tfschema"

PROVIDERS = {
    "aws": ("registry.terraform.io/hashicorp/aws", "6.69.1", "aws.json.gz"),
    "google": ("registry.terraform.io/hashicorp/google", "8.7.0", "google.json.gz"),
    "google-beta": ("registry.terraform.io/hashicorp/google-beta", "8.7.0", "google-beta.json.gz"),
}

_LEGACY_TYPES: dict[str, CtyType] = {
    "string": "string",
    "number": "number",
    "boolean": "bool",
    "stringList": ["list", "string"],
    "numberList": ["list", "number"],
    "booleanList": ["list", "bool"],
    "stringMap": ["map", "string"],
    "numberMap": ["map", "number"],
    "booleanMap": ["map", "bool"],
    "stringMapMap": ["map", ["map", "string"]],
    "stringListList": ["list", ["list", "string"]],
    "stringMapList": ["list", ["map", "string"]],
    "stringListMap": ["map", ["list", "string"]],
}


# computed-only attributes the older data gives no type for, where the name says what the provider uses
_UNTYPED: dict[str, CtyType] = {
    "tags_all": ["map", "string"],
    "effective_labels": ["map", "string"],
    "terraform_labels": ["map", "string"],
    "latest_version": "number",
}


@dataclass
class Attribute:
    name: str
    type: CtyType | None  # None for a nested attribute (see `nested`)
    required: bool
    optional: bool
    computed: bool
    sensitive: bool = False
    write_only: bool = False
    nested: Block | None = None
    nesting: str = "single"  # of a nested attribute

    @property
    def read_only(self) -> bool:
        return self.computed and not self.optional and not self.required

    def implied_type(self) -> CtyType:
        if self.nested is None:
            assert self.type is not None
            return self.type
        inner = self.nested.implied_type()
        return inner if self.nesting == "single" else [self.nesting, inner]


@dataclass
class NestedBlock:
    name: str
    block: Block
    nesting: str  # single | list | set | map
    min_items: int = 0
    max_items: int = 0

    def implied_type(self) -> CtyType:
        inner = self.block.implied_type()
        if self.nesting == "single":
            return inner
        if self.nesting in ("list", "map") and has_dynamic(inner):
            return "dynamic"  # Terraform core does the same: such a block's elements may differ in type
        return [self.nesting, inner]


@dataclass
class Block:
    attributes: dict[str, Attribute] = field(default_factory=dict)
    blocks: dict[str, NestedBlock] = field(default_factory=dict)
    _implied: CtyType | None = None

    def implied_type(self) -> CtyType:
        if self._implied is None:
            types: dict[str, CtyType] = {n: a.implied_type() for n, a in self.attributes.items()}
            types.update({n: b.implied_type() for n, b in self.blocks.items()})
            self._implied = ["object", types]
        return self._implied


def _attr_type(name: str, raw: dict[str, Any], in_set: bool) -> CtyType:
    if "cty" in raw:
        return raw["cty"]
    legacy = raw.get("type")
    if legacy is None:
        return _UNTYPED.get(name, "string")
    if legacy in _LEGACY_TYPES:
        return _LEGACY_TYPES[legacy]
    # a binding class name (a list of objects whose fields the old data does not give)
    return ["list", "string"] if in_set else "dynamic"


def parse_block(raw: dict[str, Any], in_set: bool = False) -> Block:
    block = Block()
    for name, a in sorted(raw.get("attributes", {}).items()):
        nested = None
        nesting = "single"
        if "attributes" in a and "cty" not in a:
            nesting = a.get("nesting", "single")
            nested = parse_block({"attributes": a["attributes"]}, in_set or nesting == "set")
        block.attributes[name] = Attribute(
            name=name,
            type=None if nested else _attr_type(name, a, in_set),
            required=bool(a.get("required")),
            optional=bool(a.get("optional")),
            computed=bool(a.get("computed")),
            sensitive=bool(a.get("sensitive")),
            write_only=bool(a.get("write_only")),
            nested=nested,
            nesting=nesting,
        )
    for name, b in sorted(raw.get("blocks", {}).items()):
        nesting = b.get("nesting", "list")
        max_items = b.get("max_items") or 0
        min_items = b.get("min_items") or (1 if b.get("required") else 0)
        if nesting == "single":
            min_items, max_items = 0, 0
        block.blocks[name] = NestedBlock(
            name=name,
            block=parse_block(b, in_set or nesting == "set"),
            nesting=nesting,
            min_items=min_items,
            max_items=max_items,
        )
    return block


KINDS = ("resources", "data_sources", "ephemeral_resources")


class ProviderSchema:
    """One provider's schema; blocks are parsed on first use (a plan touches a few dozen of ~2,400 types)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source, version, filename = PROVIDERS[name]
        raw_bytes = (SCHEMA_DIR / filename).read_bytes()
        self._raw = json.loads(gzip.decompress(raw_bytes))
        self.version = self._raw.get("provider_version", version)
        self.digest = hashlib.sha256(raw_bytes + Path(__file__).read_bytes()).hexdigest()[:16]
        self._parsed: dict[tuple[str, str], Block] = {}

    def types(self, kind: str) -> list[str]:
        return sorted(self._raw.get(kind, {}))

    def block(self, kind: str, type_name: str) -> Block:
        key = (kind, type_name)
        if key not in self._parsed:
            raw = self._raw["provider"] if kind == "provider" else self._raw[kind][type_name]
            self._parsed[key] = parse_block(raw)
        return self._parsed[key]

    def provider(self) -> Block:
        return self.block("provider", "")

    def resource(self, type_name: str) -> Block:
        return self.block("resources", type_name)

    def data_source(self, type_name: str) -> Block:
        return self.block("data_sources", type_name)


@cache
def load(name: str) -> ProviderSchema:
    return ProviderSchema(name)
