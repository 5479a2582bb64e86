"""Add exact Terraform types to the provider schemas in tests/data/tfschema/, from the CDK-Terrain bindings.

The schema files (see tests/data/tfschema/README.md) were extracted from the prebuilt CDK-Terrain provider
bindings on PyPI, which are generated from `terraform providers schema -json`. They lacked the types of
computed-only attributes and did not tell a list from a set. This script reads the same wheels again and adds:

- `cty` on every attribute: Terraform's JSON type-constraint encoding, exactly as
  `terraform providers schema -json` prints `type` ("string", ["set","string"], ["list",["object",{...}]]).
- the true `nesting` of every block ("list" | "set" | "single"), and `min_items` where it is known.
- a top-level `types_source` naming the wheels.

Usage (the wheels are not committed; the tests do not need them):

    pip download --no-deps -d /tmp/wheels cdktn-provider-aws==25.8.1 \\
        cdktn-provider-google==21.1.0 cdktn-provider-google-beta==21.1.0
    python tests/tools/tfschema_types.py /tmp/wheels            # rewrites tests/data/tfschema/*.json.gz
    python tests/tools/tfschema_types.py --check /tmp/wheels    # exit 1 if a rewrite would change a file

How the types are recovered (the generator's rules, from its source, `@cdktn/provider-generator`
`resource-parser.ts`, `attribute-type-model.ts`, `attribute-model.ts`, checked against every file here):

- every attribute and block has a `// NAME - computed: C, optional: O, required: R` comment, followed by a
  getter (in the resource, data source or provider class, or in the `...OutputReference` class of a nested
  object), and configurable ones also by an entry in `synthesizeHclAttributes()` / `...ToHclTerraform()`:
  `{isBlock, type: "simple"|"list"|"set"|"map"|"struct", storageClassType}`.
- the HCL entry is exact for the outer collection kind (`type`); `storageClassType` names the element:
  `string|number|boolean` plus `List`/`Map` suffixes (a set also gets `List`), or a struct class name.
- a getter is exact for the read side: getStringAttribute -> string, getNumberAttribute -> number,
  getBooleanAttribute -> bool, getListAttribute -> list(string), Fn.tolist(getListAttribute) -> set(string),
  getNumberListAttribute -> list(number), Token.asNumberList(Fn.tolist(getNumberListAttribute)) -> set(number),
  get{String,Number,Boolean,Any}MapAttribute -> map(...) (Any = dynamic); a stored class
  `new cdktn.BooleanList(this, "n", wrapsSet)` / `cdktn.StringMap` / `cdktn.StringMapList` ... gives the
  type by its name, `wrapsSet` telling a set from a list; `new XxxList(this, "n", wrapsSet)` (a ComplexList of
  `XxxOutputReference`) is a list/set of objects, `new XxxMap(this, "n")` a map of objects and
  `new XxxOutputReference(this, "n")` a single object (or a block with max_items 1).
- blocks: `listMapperHcl(fn, true)` marks a block (attributes get `false`); HCL `type` "struct" is a
  NestingSingle block; a list/set block whose value is not wrapped in listMapperHcl has max_items 1.
- `dynamic` is rendered as map(any) (`anyMap`); no attribute of these three providers uses it.
- not recoverable from the bindings: whether an inner collection of a nested collection is a list or a set
  (`stringListList` is list(list(string)) or list(set(string)) ...); those few are looked up in the provider
  source and listed in INNER_COLLECTIONS below. Attributes the generator skipped (`any`) stay untyped.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import sys
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "terraform"))
from tftypes import is_type_expression  # noqa: E402  (tests/terraform/tftypes.py: the format's reader)

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "data" / "tfschema"

# schema file name -> (PyPI distribution, version) of the bindings it was extracted from
WHEELS = {
    "aws": ("cdktn-provider-aws", "25.8.1"),
    "google": ("cdktn-provider-google", "21.1.0"),
    "google-beta": ("cdktn-provider-google-beta", "21.1.0"),
}

# Nested collections whose inner kind the bindings cannot show (storageClassType "stringListList" is the
# same for list(list(string)) and list(set(string))). Each entry was read in the provider source
# (hashicorp/terraform-provider-aws; the first and the last also in `terraform providers schema -json` of
# hashicorp/aws 6.19.0). An entry must fit what the bindings do show, or the run stops.
# Key: "SECTION.TYPE.PATH" (PATH dotted through blocks and objects).
INNER_COLLECTIONS: dict[str, dict[str, Any]] = {
    "aws": {
        # SDKv2: TypeList of TypeList of TypeString (internal/service/customerprofiles/domain.go)
        "resources.aws_customerprofiles_domain.matching.auto_merging.consolidation.matching_attributes_list": [
            "list",
            ["list", "string"],
        ],
        # framework: MapAttribute{ElementType: types.ListType{ElemType: types.StringType}}
        # (internal/service/servicequotas/auto_management.go)
        "resources.aws_servicequotas_auto_management.exclusion_list": ["map", ["list", "string"]],
        # SDKv2: TypeSet of TypeSet of TypeString
        # (internal/service/networkmanager/core_network_policy_document_data_source.go)
        "data_sources.aws_networkmanager_core_network_policy_document.segment_actions.via.with_edge_override"
        ".edge_sets": ["set", ["set", "string"]],
    },
}

SECTIONS = ("resources", "data_sources", "ephemeral_resources")
CDKTN_BASES = {
    "TerraformResource": "resources",
    "TerraformDataSource": "data_sources",
    "TerraformEphemeralResource": "ephemeral_resources",
    "TerraformProvider": "provider",
}

# ---------------------------------------------------------------------------------------------------------
# Parsing the generated JavaScript
# ---------------------------------------------------------------------------------------------------------

_CLASS_RE = re.compile(r"^class (\w+) extends cdktn\.(\w+) \{\n(.*?)^\}\n", re.M | re.S)
_HCL_FUNC_RE = re.compile(r"^function (\w+)ToHclTerraform\(struct\) \{\n(.*?)^\}\n", re.M | re.S)
_MEMBER_RE = re.compile(
    r"^    // (\S+) - computed: (true|false), optional: (true|false), required: (true|false)\n"
    r"(?:    _\w+(?: = (.+?))?;\n)?"
    r"(    /\*\*\n(?:    \*.*\n)*?    \*/\n)?"  # e.g. the note on a write-only attribute
    r"    get \w+\(\) \{\n        return (.+?);\n    \}",
    re.M,
)
_HCL_ENTRY_RE = re.compile(
    r'^ +"?([\w-]+)"?: \{\n +value: (.+),\n +isBlock: (true|false),\n +type: "(\w+)",\n'
    r' +storageClassType: "(\w+)",\n +\},?$',
    re.M,
)
_TF_TYPE_RE = re.compile(r'static tfResourceType = "([\w-]+)";')
_ELEMENT_RE = re.compile(r"get\((?:index|key)\) \{\n\s+return new (?:\w+_\d+\.)?(\w+)\(")
_MODULE_PREFIX = re.compile(r"\b\w+_\d+\.")


@dataclass
class Member:
    """One attribute or block as the generated code declares it."""

    name: str
    computed: bool
    optional: bool
    required: bool
    init: str | None  # the stored-class initializer, `new X(this, "name", wrapsSet)`
    getter: str  # the getter's return expression
    flags_known: bool = True  # False for a provider struct's attribute (no OutputReference class to read)
    write_only: bool = False  # the generator's "Write-only: the provider never returns this value" note


@dataclass
class HclEntry:
    value: str
    is_block: bool
    type: str  # simple | list | set | map | struct
    storage: str  # storageClassType


@dataclass
class JsClass:
    name: str
    base: str
    members: dict[str, Member] = field(default_factory=dict)
    element: str | None = None  # ComplexList / ComplexMap: the OutputReference class of an item
    tf_type: str | None = None
    hcl: dict[str, HclEntry] = field(default_factory=dict)  # resource classes: synthesizeHclAttributes()


@dataclass
class Module:
    """All classes and HCL functions of one resource directory (lib/NAME/**.js)."""

    classes: dict[str, JsClass] = field(default_factory=dict)
    hcl_funcs: dict[str, dict[str, HclEntry]] = field(default_factory=dict)  # struct name -> entries


def _strip_sourcemap(text: str) -> str:
    cut = text.find("//# sourceMappingURL=")
    return text if cut < 0 else text[:cut]


def _hcl_entries(body: str) -> dict[str, HclEntry]:
    return {
        m.group(1): HclEntry(_MODULE_PREFIX.sub("", m.group(2)), m.group(3) == "true", m.group(4), m.group(5))
        for m in _HCL_ENTRY_RE.finditer(body)
    }


def parse_js(text: str, module: Module) -> None:
    text = _strip_sourcemap(text)
    for m in _HCL_FUNC_RE.finditer(text):
        name = m.group(1)
        module.hcl_funcs[name[0].upper() + name[1:]] = _hcl_entries(m.group(2))
    for m in _CLASS_RE.finditer(text):
        name, base, body = m.groups()
        cls = JsClass(name, base)
        for mm in _MEMBER_RE.finditer(body):
            tf, comp, opt, req, init, doc, getter = mm.groups()
            cls.members[tf] = Member(
                tf,
                comp == "true",
                opt == "true",
                req == "true",
                _MODULE_PREFIX.sub("", init) if init else None,
                _MODULE_PREFIX.sub("", getter),
                write_only=bool(doc and "@deprecated Write-only:" in doc),
            )
        if base in ("ComplexList", "ComplexMap"):
            em = _ELEMENT_RE.search(body)
            if em is None:
                raise ValueError(f"{name}: no item class")
            cls.element = em.group(1)
        if base in CDKTN_BASES:
            tm = _TF_TYPE_RE.search(body)
            cls.tf_type = tm.group(1) if tm else None
            hcl_at = body.find("synthesizeHclAttributes() {")
            if hcl_at < 0:
                raise ValueError(f"{name}: no synthesizeHclAttributes")
            cls.hcl = _hcl_entries(body[hcl_at:])
        if name in module.classes:
            raise ValueError(f"class {name} defined twice in one module")
        module.classes[name] = cls


def read_wheel(path: Path) -> tuple[str, str, dict[str, Module]]:
    """(distribution, version, {resource directory: Module}) from a cdktn provider wheel."""
    modules: dict[str, Module] = {}
    with zipfile.ZipFile(path) as wheel:
        tgz_names = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
        if len(tgz_names) != 1:
            raise ValueError(f"{path}: expected one .jsii.tgz, found {tgz_names}")
        meta_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        meta = wheel.read(meta_name).decode()
        name = re.search(r"^Name: (.+)$", meta, re.M).group(1).strip()  # type: ignore[union-attr]
        dist = re.sub(r"[-_.]+", "-", name).lower()
        version = re.search(r"^Version: (.+)$", meta, re.M).group(1).strip()  # type: ignore[union-attr]
        with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz_names[0])), mode="r:gz") as tar:
            for member in tar:
                parts = member.name.split("/")
                # package/lib/DIR/index.js and package/lib/DIR/index-structs/structsN.js
                if not member.isfile() or not member.name.endswith(".js") or len(parts) < 4:
                    continue
                if parts[:2] != ["package", "lib"]:
                    continue
                fh = tar.extractfile(member)
                assert fh is not None
                parse_js(fh.read().decode("utf-8"), modules.setdefault(parts[2], Module()))
    return dist, version, modules


# ---------------------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------------------

_PRIMITIVE = {"string": "string", "number": "number", "boolean": "bool"}
_GETTERS = {
    "this.getStringAttribute('{}')": "string",
    "this.getNumberAttribute('{}')": "number",
    "this.getBooleanAttribute('{}')": "bool",
    "this.getListAttribute('{}')": ["list", "string"],
    "cdktn.Fn.tolist(this.getListAttribute('{}'))": ["set", "string"],
    "this.getNumberListAttribute('{}')": ["list", "number"],
    "cdktn.Token.asNumberList(cdktn.Fn.tolist(this.getNumberListAttribute('{}')))": ["set", "number"],
    "this.getStringMapAttribute('{}')": ["map", "string"],
    "this.getNumberMapAttribute('{}')": ["map", "number"],
    "this.getBooleanMapAttribute('{}')": ["map", "bool"],
    "this.getAnyMapAttribute('{}')": "dynamic",
}
_INIT_RE = re.compile(r'new (?:cdktn\.)?(\w+)\(this, "([\w-]+)"(?:, (true|false))?\)$')
_SIMPLE_CLASS_RE = re.compile(r"(String|Number|Boolean|Any)((?:List|Map)+)")
_STORAGE_RE = re.compile(r"(string|number|boolean|any)((?:List|Map)*)")
_STRUCT_FN_RE = re.compile(r"(\w+)ToHclTerraform\b")


class Unknown(Exception):
    """The type of this attribute cannot be recovered from the bindings."""


class Ambiguous(Exception):
    """A nested collection whose inner kind (list or set) the bindings do not show."""

    def __init__(self, partial: Any) -> None:
        super().__init__("inner collection kind unknown")
        self.partial = partial  # the type with "list?" where the kind is unknown


def _simple_chain(base: str, suffixes: list[str], outer: str) -> Any:
    """`base` wrapped in `suffixes` (innermost first; the outermost is `outer`)."""
    cty: Any = "dynamic" if base == "any" and suffixes and suffixes[0] == "Map" else _PRIMITIVE.get(base)
    rest = suffixes[1:] if base == "any" else suffixes
    if cty is None:
        raise Unknown(f"base type {base!r}")
    ambiguous = False
    for i, suffix in enumerate(rest):
        last = i == len(rest) - 1
        if last:
            kind = outer
        elif suffix == "Map":
            kind = "map"
        else:
            kind, ambiguous = "list?", True
        cty = [kind, cty]
    if ambiguous:
        raise Ambiguous(cty)
    return cty


def _suffixes(s: str) -> list[str]:
    return re.findall(r"List|Map", s)


class Resolver:
    """Types for the members of one resource directory's classes."""

    def __init__(self, module: Module) -> None:
        self.module = module

    def struct_members(self, struct: str) -> tuple[dict[str, Member], dict[str, HclEntry]]:
        cls = self.module.classes.get(f"{struct}OutputReference")
        hcl = self.module.hcl_funcs.get(struct, {})
        members = dict(cls.members) if cls else {}
        for name in hcl:  # provider structs have no OutputReference class: all their attributes are set
            members.setdefault(name, Member(name, False, True, False, None, "this._x", flags_known=False))
        return members, hcl

    def struct_of_class(self, class_name: str) -> tuple[str, str]:
        """(collection kind of the stored class, struct name) for `new CLASS(this, ...)`."""
        cls = self.module.classes.get(class_name)
        if cls is None:
            raise Unknown(f"no class {class_name}")
        if cls.base == "ComplexObject":
            return "object", class_name.removesuffix("OutputReference")
        if cls.base in ("ComplexList", "ComplexMap") and cls.element:
            return ("map" if cls.base == "ComplexMap" else "list"), cls.element.removesuffix(
                "OutputReference"
            )
        raise Unknown(f"class {class_name} extends {cls.base}")

    def object_type(self, struct: str, stack: tuple[str, ...]) -> Any:
        if struct in stack:
            raise Unknown(f"recursive struct {struct}")
        members, hcl = self.struct_members(struct)
        attrs = {}
        for name, member in members.items():
            attrs[name] = self.member_type(member, hcl.get(name), (*stack, struct))
        return ["object", attrs]

    def member_type(self, member: Member, hcl: HclEntry | None, stack: tuple[str, ...] = ()) -> Any:
        """The cty type of an attribute (not a block) from its getter, stored class and HCL entry."""
        from_getter = self._from_read_side(member, stack)
        from_hcl = self._from_hcl(hcl, stack) if hcl is not None else None
        if from_getter is not None and from_hcl is not None and from_getter != from_hcl:
            raise ValueError(f"{member.name}: getter says {from_getter}, HCL says {from_hcl}")
        cty = from_getter if from_getter is not None else from_hcl
        if cty is None:
            if hcl is None and "interpolationForAttribute" in member.getter:
                raise Unknown(
                    "skipped by the generator (any): read with interpolationForAttribute, not settable"
                )
            raise Unknown(f"{member.name}: getter {member.getter!r}")
        return cty

    def _from_read_side(self, member: Member, stack: tuple[str, ...]) -> Any:
        getter = member.getter.replace(f"'{member.name}'", "'{}'")
        if getter in _GETTERS:
            return _GETTERS[getter]
        if member.init is None:
            return None  # interpolationForAttribute or a provider attribute: the HCL entry decides
        m = _INIT_RE.match(member.init)
        if m is None or m.group(2) != member.name:
            raise ValueError(f"{member.name}: unexpected initializer {member.init!r}")
        class_name, _, wraps_set = m.groups()
        outer = "set" if wraps_set == "true" else None
        sm = _SIMPLE_CLASS_RE.fullmatch(class_name)
        if sm:
            suffixes = _suffixes(sm.group(2))
            last = suffixes[-1]
            return _simple_chain(sm.group(1).lower(), suffixes, outer or ("map" if last == "Map" else "list"))
        kind, struct = self.struct_of_class(class_name)
        obj = self.object_type(struct, stack)
        if kind == "object":
            return obj
        if kind == "map":
            return ["map", obj]
        return [outer or "list", obj]

    def _from_hcl(self, hcl: HclEntry, stack: tuple[str, ...]) -> Any:
        if hcl.type == "simple":
            if hcl.storage == "any":
                raise Unknown("skipped by the generator (any)")
            return _PRIMITIVE[hcl.storage]
        sm = _STORAGE_RE.fullmatch(hcl.storage)
        if sm:
            return _simple_chain(sm.group(1), _suffixes(sm.group(2)), hcl.type)
        fm = _STRUCT_FN_RE.search(hcl.value)
        if fm is None:
            raise ValueError(f"no struct mapper in {hcl.value!r}")
        struct = fm.group(1)[0].upper() + fm.group(1)[1:]
        obj = self.object_type(struct, stack)
        if hcl.type == "struct":
            return obj
        if hcl.value.count("listMapperHcl(") + hcl.value.count("hashMapperHcl(") > 1:
            raise Unknown(f"nested collection of objects {hcl.value!r}")
        return [hcl.type, obj]


def block_nesting(member: Member, hcl: HclEntry | None) -> tuple[str, bool]:
    """(nesting mode, single item) of a block."""
    if hcl is None:
        raise Unknown(f"block {member.name} has no HCL entry")
    if hcl.type == "struct":
        return "single", False
    if hcl.type in ("list", "set"):
        wrapped = hcl.value.startswith("cdktn.listMapperHcl(")
        if wrapped and not hcl.value.split(", ")[-1].startswith("true)"):
            raise ValueError(f"block {member.name} mapped as an attribute: {hcl.value!r}")
        return hcl.type, not wrapped
    if hcl.type == "map":
        return "map", False
    raise ValueError(f"block {member.name}: HCL type {hcl.type}")


def block_struct(hcl: HclEntry) -> str:
    fm = _STRUCT_FN_RE.search(hcl.value)
    if fm is None:
        raise ValueError(f"no struct mapper in {hcl.value!r}")
    return fm.group(1)[0].upper() + fm.group(1)[1:]


# ---------------------------------------------------------------------------------------------------------
# Annotating the schema files
# ---------------------------------------------------------------------------------------------------------


def _fits(cty: Any, partial: Any) -> bool:
    """Whether `cty` is `partial` with each "list?" (list or set, unknown) made a list or a set."""
    if isinstance(partial, list) and isinstance(cty, list) and len(cty) == len(partial) == 2:
        kinds = ("list", "set") if partial[0] == "list?" else (partial[0],)
        return cty[0] in kinds and _fits(cty[1], partial[1])
    return bool(cty == partial)


def _legacy_type(cty: Any) -> str | None:
    """The old `type` notation for a simple cty type (stringList for list and set alike), for a cross-check."""
    names = {"string": "string", "number": "number", "bool": "boolean"}
    if isinstance(cty, str):
        return names.get(cty)
    kind, inner = cty
    if kind in ("list", "set", "map") and isinstance(inner, str) and inner in names:
        return names[inner] + ("Map" if kind == "map" else "List")
    return None


class Annotator:
    def __init__(self, provider: str, modules: dict[str, Module]) -> None:
        self.provider = provider
        self.stats: Counter[str] = Counter()
        self.corrections: Counter[str] = Counter()  # changes to the input file (printed, not stored)
        self.untyped: list[str] = []
        self.mismatches: list[str] = []
        self.by_type: dict[tuple[str, str], tuple[Module, JsClass]] = {}
        for module in modules.values():
            for cls in module.classes.values():
                section = CDKTN_BASES.get(cls.base)
                if section is None:
                    continue
                key = (section, cls.tf_type or self.provider)
                if key in self.by_type:
                    raise ValueError(f"{key} generated twice")
                self.by_type[key] = (module, cls)

    def annotate(self, schema: dict[str, Any]) -> None:
        module, cls = self.by_type[("provider", self.provider)]
        # The generator adds an `alias` attribute to every provider schema (resource-parser.ts: "somehow
        # missing from provider schema"); it is Terraform's meta-argument, not part of the provider's schema.
        if schema["provider"].get("attributes", {}).pop("alias", None) is not None:
            self.corrections["provider attribute `alias` (added by the generator) removed"] += 1
        self._block(
            f"provider.{self.provider}",
            schema["provider"],
            Resolver(module),
            cls.members,
            cls.hcl,
        )
        for section in SECTIONS:
            for rtype, block in schema[section].items():
                found = self.by_type.get((section, rtype))
                if found is None:
                    raise ValueError(f"{section}.{rtype}: not in the bindings")
                module, cls = found
                self._block(f"{section}.{rtype}", block, Resolver(module), cls.members, cls.hcl)

    def _block(
        self,
        path: str,
        block: dict[str, Any],
        resolver: Resolver,
        members: dict[str, Member],
        hcl: dict[str, HclEntry],
    ) -> None:
        for name, attr in block.get("attributes", {}).items():
            at = f"{path}.{name}"
            member = members.get(name)
            if member is None:
                raise ValueError(f"{at}: not in the bindings")
            self._attribute(at, attr, resolver, member, hcl.get(name))
        for name, sub in block.get("blocks", {}).items():
            at = f"{path}.{name}"
            member = members.get(name)
            if member is None:
                raise ValueError(f"{at}: not in the bindings")
            entry = hcl.get(name)
            nesting, single_item = block_nesting(member, entry)
            self.stats[f"block_{nesting}"] += 1
            if sub.get("nesting") != nesting:
                self.corrections[f"block nesting {sub.get('nesting')} -> {nesting}"] += 1
            if single_item != (sub.get("max_items") == 1):
                raise ValueError(f"{at}: max_items {sub.get('max_items')} but single item {single_item}")
            sub["nesting"] = nesting
            # min_items: the generator says `required` iff min_items > 0 (list/set). Optional -> 0 (SDKv2 also
            # zeroes MinItems on optional blocks); required with max_items 1 -> 1; required otherwise -> >= 1,
            # the exact number is not in the bindings: left out. Single blocks (SDKv2 timeouts, framework
            # SingleNestedBlock) have min_items 0.
            sub.pop("min_items", None)
            if nesting == "single" and sub.get("required"):
                raise ValueError(f"{at}: a required single block")
            if nesting == "single" or not sub.get("required"):
                sub["min_items"] = 0
            elif single_item:
                sub["min_items"] = 1
            else:
                self.stats["block_min_items_unknown"] += 1
            if "same_as" in sub:  # a recursive block: its content is that of the block named in same_as
                continue
            assert entry is not None
            sub_members, sub_hcl = resolver.struct_members(block_struct(entry))
            self._block(at, sub, resolver, sub_members, sub_hcl)

    def _attribute(
        self, at: str, attr: dict[str, Any], resolver: Resolver, member: Member, hcl: HclEntry | None
    ) -> None:
        for flag in ("computed", "optional", "required"):
            if member.flags_known and bool(attr.get(flag)) != getattr(member, flag):
                self.mismatches.append(f"{at}: {flag} is {attr.get(flag)} in the schema file")
        try:
            cty = resolver.member_type(member, hcl)
        except Ambiguous as exc:
            cty = INNER_COLLECTIONS.get(self.provider, {}).get(at)
            if cty is not None:
                if not _fits(cty, exc.partial):
                    raise ValueError(
                        f"{at}: INNER_COLLECTIONS says {cty}, the bindings {exc.partial}"
                    ) from exc
                self.stats["attr_inner_kind_from_provider_source"] += 1
            else:
                self.untyped.append(f"{at}\tinner collection kind unknown: {json.dumps(exc.partial)}")
                self.stats["attr_untyped"] += 1
                return
        except Unknown as exc:
            self.untyped.append(f"{at}\t{exc}")
            self.stats["attr_untyped"] += 1
            return
        if not is_type_expression(cty) or "list?" in json.dumps(cty):
            raise ValueError(f"{at}: bad type {cty}")
        attr["cty"] = cty
        self.stats["attr_typed"] += 1
        if member.write_only:
            attr["write_only"] = True
            self.stats["attr_write_only"] += 1
        legacy = attr.get("type")
        expected = _legacy_type(cty)
        if legacy is not None and expected is not None and legacy != expected:
            raise ValueError(f"{at}: type {legacy} but cty {cty}")
        if "object" in attr:
            self._object(at, attr, cty)

    def _object(self, at: str, attr: dict[str, Any], cty: Any) -> None:
        """An object-valued attribute (SDKv2 attribute as blocks, framework object): its `object`'s
        attributes get their types too, and its `nesting` is the collection kind of its type."""
        nesting = {"list": "list", "set": "set", "map": "map", "object": "single"}[cty[0]]
        if attr.get("nesting") != nesting:
            self.corrections[f"object attribute nesting {attr.get('nesting')} -> {nesting}"] += 1
            attr["nesting"] = nesting
        obj_type = cty if cty[0] == "object" else cty[1]
        if obj_type[0] != "object":
            raise ValueError(f"{at}: an object attribute of type {cty}")
        for name, sub in attr["object"].get("attributes", {}).items():
            if name not in obj_type[1]:
                raise ValueError(f"{at}.{name}: not in the object type {cty}")
            sub["cty"] = obj_type[1][name]
            if "object" in sub:
                self._object(f"{at}.{name}", sub, sub["cty"])


def _dump(schema: dict[str, Any]) -> bytes:
    raw = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    return buf.getvalue()


def find_wheels(paths: list[Path]) -> dict[str, Path]:
    """{schema name: wheel path} from wheel files and directories holding them."""
    files: list[Path] = []
    for p in paths:
        files += sorted(p.glob("*.whl")) if p.is_dir() else [p]
    found: dict[str, Path] = {}
    for provider, (dist, version) in WHEELS.items():
        stem = f"{dist.replace('-', '_')}-{version}-"
        matches = [f for f in files if f.name.startswith(stem)]
        if matches:
            found[provider] = matches[0]
    return found


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def regenerate(provider: str, wheel: Path, schema_dir: Path) -> tuple[bytes, Annotator]:
    dist, version, modules = read_wheel(wheel)
    if (dist, version) != WHEELS[provider]:
        raise ValueError(f"{wheel}: is {dist} {version}, expected {WHEELS[provider]}")
    with gzip.open(schema_dir / f"{provider}.json.gz", "rt", encoding="utf-8") as fh:
        schema = json.load(fh)
    annotator = Annotator(provider, modules)
    annotator.annotate(schema)
    if annotator.mismatches:
        raise ValueError("flags differ from the bindings:\n" + "\n".join(annotator.mismatches[:20]))
    stats = dict(sorted(annotator.stats.items()))
    schema["types_source"] = {
        "package": dist,
        "version": version,
        "wheel": wheel.name,
        "wheel_sha256": _sha256(wheel),
        "tool": "tests/tools/tfschema_types.py",
        "stats": stats,
        "untyped": sorted(annotator.untyped),
    }
    return _dump(schema), annotator


UNTYPED_FILE = "untyped.txt"


def untyped_listing(untyped: dict[str, list[str]]) -> bytes:
    lines = [
        "# Attributes the regeneration could not type (tests/tools/tfschema_types.py); they have no `cty`.",
        "# provider<TAB>section.type.path<TAB>why",
    ]
    for provider in sorted(untyped):
        lines += [f"{provider}\t{entry}" for entry in untyped[provider]]
    return ("\n".join(lines) + "\n").encode()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("wheels", nargs="+", type=Path, help="wheel files or directories holding them")
    parser.add_argument("--schema-dir", type=Path, default=SCHEMA_DIR)
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if a file would change")
    args = parser.parse_args(argv)
    wheels = find_wheels(args.wheels)
    missing = sorted(set(WHEELS) - set(wheels))
    if missing:
        print(f"no wheel for {missing}: need {[WHEELS[m] for m in missing]}", file=sys.stderr)
        return 2
    outputs: dict[Path, bytes] = {}
    untyped: dict[str, list[str]] = {}
    for provider, wheel in sorted(wheels.items()):
        data, annotator = regenerate(provider, wheel, args.schema_dir)
        outputs[args.schema_dir / f"{provider}.json.gz"] = data
        untyped[provider] = sorted(annotator.untyped)
        stats = annotator.stats
        print(
            f"{provider}: {stats['attr_typed']} attributes typed, {stats['attr_untyped']} untyped; "
            + ", ".join(f"{k}={v}" for k, v in sorted(stats.items()) if not k.startswith("attr_typed"))
        )
        for change, count in sorted(annotator.corrections.items()):
            print(f"  changed in the input: {change}: {count}")
    outputs[args.schema_dir / UNTYPED_FILE] = untyped_listing(untyped)
    changed = [path for path, data in outputs.items() if not path.exists() or path.read_bytes() != data]
    if args.check:
        if changed:
            print("would change: " + ", ".join(str(c) for c in changed), file=sys.stderr)
            return 1
        return 0
    for path in changed:
        path.write_bytes(outputs[path])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
