"""Read the types in tests/data/tfschema/*.json.gz (see its README.md): type expressions and blocks as
`terraform providers schema -json` prints them.

- `is_type_expression(t)`: whether `t` is a Terraform JSON type constraint ("string", ["set","number"], ...).
- `terraform_json_block(block)`: one resource / data source / provider block of a schema file in the layout
  of `terraform providers schema -json` (`attributes` with `type`, `block_types` with `nesting_mode`).
- `iter_attributes(block)`: every attribute of a block and of its nested blocks, with its dotted path.

Stdlib only; the stand-in provider can copy this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

PRIMITIVE_TYPES = frozenset({"string", "number", "bool", "dynamic"})
COLLECTION_KINDS = frozenset({"list", "set", "map"})


def is_type_expression(t: Any) -> bool:
    """Whether `t` is a type in Terraform's JSON encoding (cty's JSON type notation)."""
    if isinstance(t, str):
        return t in PRIMITIVE_TYPES
    if not (isinstance(t, list) and len(t) in (2, 3)):
        return False
    kind = t[0]
    if kind in COLLECTION_KINDS:
        return len(t) == 2 and is_type_expression(t[1])
    if kind == "object":
        # ["object", {attr: type}] or ["object", {attr: type}, [optional attr, ...]]
        if not isinstance(t[1], dict) or not all(
            isinstance(k, str) and is_type_expression(v) for k, v in t[1].items()
        ):
            return False
        return len(t) == 2 or (isinstance(t[2], list) and all(k in t[1] for k in t[2]))
    if kind == "tuple":
        return len(t) == 2 and isinstance(t[1], list) and all(is_type_expression(v) for v in t[1])
    return False


def iter_attributes(block: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, attribute) for every attribute of `block` and of its nested blocks."""
    for name, attr in block.get("attributes", {}).items():
        yield f"{path}{name}", attr
    for name, sub in block.get("blocks", {}).items():
        yield from iter_attributes(sub, f"{path}{name}.")


class UntypedAttribute(ValueError):
    """An attribute without `cty` (listed in tests/data/tfschema/untyped.txt)."""


def _block_at(root: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = root
    for name in dotted.split("."):
        node = node["blocks"][name]
    return node


def terraform_json_block(
    block: dict[str, Any],
    *,
    untyped: str = "raise",
    recursion_depth: int = 2,
    _root: dict[str, Any] | None = None,
    _seen: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`block` in the layout of `terraform providers schema -json` (its "block" object).

    Flags that are false are left out, as Terraform does. `min_items` / `max_items` are printed when
    non-zero; a required list/set block whose exact `min_items` the schema file does not know gets 1, its
    lower bound. `untyped`: "raise" (UntypedAttribute) or "skip" for the few attributes without `cty`.
    A block with `same_as` (a recursion the bindings' generator introduced; the provider's real depth is
    not known) is expanded `recursion_depth` times and then left out.
    """
    root = block if _root is None else _root
    out: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for name, attr in block.get("attributes", {}).items():
        if "cty" not in attr:
            if untyped == "skip":
                continue
            raise UntypedAttribute(name)
        entry: dict[str, Any] = {"type": attr["cty"]}
        for flag in ("required", "optional", "computed", "write_only"):
            if attr.get(flag):
                entry[flag] = True
        attributes[name] = entry
    if attributes:
        out["attributes"] = attributes
    block_types: dict[str, Any] = {}
    for name, sub in block.get("blocks", {}).items():
        content = sub
        if "same_as" in sub:
            if _seen.count(sub["same_as"]) >= recursion_depth:
                continue
            content = _block_at(root, sub["same_as"])
        entry = {
            "nesting_mode": sub["nesting"],
            "block": terraform_json_block(
                content,
                untyped=untyped,
                recursion_depth=recursion_depth,
                _root=root,
                _seen=(*_seen, sub["same_as"]) if "same_as" in sub else _seen,
            ),
        }
        if sub["nesting"] in ("list", "set"):
            min_items = sub.get("min_items", 1 if sub.get("required") else 0)
            if min_items:
                entry["min_items"] = min_items
            if sub.get("max_items"):
                entry["max_items"] = sub["max_items"]
        block_types[name] = entry
    if block_types:
        out["block_types"] = block_types
    return out
