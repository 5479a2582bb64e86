"""cty values as Terraform sends them to a provider: msgpack, typed by the schema, with unknowns.

Types use Terraform's JSON type-constraint encoding: "string", "number", "bool", "dynamic",
["list", T], ["set", T], ["map", T], ["object", {name: T}], ["tuple", [T, ...]].
Values decode to Python: None (null), UNKNOWN-like `Unknown` objects, str, int/float/Decimal, bool, list (list,
set, tuple), dict (map, object) and `Dyn` for a value of dynamic type (it carries its own concrete type).
Unknowns keep their raw msgpack extension (refinements included), so they are sent back exactly as received.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgpack

CtyType = Any  # str | list: the JSON type encoding

_UNKNOWN_EXT = 0  # cty's msgpack extension code for an unknown value
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Unknown:
    """An unknown value; `ext` is the msgpack extension exactly as Terraform sent it (refinements included)."""

    ext: msgpack.ExtType = msgpack.ExtType(_UNKNOWN_EXT, b"")

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = Unknown()


@dataclass
class Dyn:
    """A value of dynamic type: its concrete type travels with it."""

    type: CtyType
    value: Any


def kind(ty: CtyType) -> str:
    return ty if isinstance(ty, str) else ty[0]


def is_unknown(value: Any) -> bool:
    return isinstance(value, Unknown)


def parse_type_bytes(raw: bytes) -> CtyType:
    return json.loads(raw)


def type_bytes(ty: CtyType) -> bytes:
    return json.dumps(ty, separators=(",", ":")).encode()


def has_dynamic(ty: CtyType) -> bool:
    k = kind(ty)
    if k == "dynamic":
        return True
    if k in ("list", "set", "map"):
        return has_dynamic(ty[1])
    if k == "object":
        return any(has_dynamic(t) for t in ty[1].values())
    if k == "tuple":
        return any(has_dynamic(t) for t in ty[1])
    return False


# ---------------------------------------------------------------- decoding


def _ext_hook(code: int, data: bytes) -> Any:
    # Code 0 is a plain unknown; Terraform 1.6+ also sends refined unknowns under another code.
    return Unknown(msgpack.ExtType(code, data))


def decode(raw: bytes, ty: CtyType) -> Any:
    if not raw:
        return None
    obj = msgpack.unpackb(raw, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    return from_msgpack(obj, ty)


def from_msgpack(obj: Any, ty: CtyType) -> Any:
    if obj is None or isinstance(obj, Unknown):
        return obj
    k = kind(ty)
    if k == "dynamic":
        type_json, inner = obj
        concrete = json.loads(type_json)
        return Dyn(concrete, from_msgpack(inner, concrete))
    if k == "string":
        return obj
    if k == "number":
        if isinstance(obj, str):
            return Decimal(obj)
        return obj
    if k == "bool":
        return obj
    if k in ("list", "set"):
        return [from_msgpack(v, ty[1]) for v in obj]
    if k == "tuple":
        return [from_msgpack(v, t) for v, t in zip(obj, ty[1], strict=True)]
    if k == "map":
        return {key: from_msgpack(v, ty[1]) for key, v in obj.items()}
    if k == "object":
        return {name: from_msgpack(obj.get(name), t) for name, t in ty[1].items()}
    raise ValueError(f"unsupported type {ty!r}")


def from_json(obj: Any, ty: CtyType) -> Any:
    """A JSON-encoded value (state files, RawState.json) read with the schema type."""
    if obj is None:
        return None
    k = kind(ty)
    if k == "dynamic":
        # state JSON stores dynamic values without their type: take the JSON shape
        return Dyn(infer_type(obj), obj)
    if k == "number":
        return obj
    if k in ("list", "set"):
        return [from_json(v, ty[1]) for v in obj]
    if k == "tuple":
        return [from_json(v, t) for v, t in zip(obj, ty[1], strict=True)]
    if k == "map":
        return {key: from_json(v, ty[1]) for key, v in obj.items()}
    if k == "object":
        return {name: from_json(obj.get(name), t) for name, t in ty[1].items()}
    return obj


def infer_type(obj: Any) -> CtyType:
    if isinstance(obj, bool):
        return "bool"
    if isinstance(obj, int | float | Decimal):
        return "number"
    if isinstance(obj, str):
        return "string"
    if isinstance(obj, list):
        return ["tuple", [infer_type(v) for v in obj]]
    if isinstance(obj, dict):
        return ["object", {k: infer_type(v) for k, v in obj.items()}]
    return "dynamic"


# ---------------------------------------------------------------- encoding


def encode(value: Any, ty: CtyType) -> bytes:
    return msgpack.packb(to_msgpack(value, ty), use_bin_type=True)


def to_msgpack(value: Any, ty: CtyType) -> Any:
    if value is None:
        return None
    if isinstance(value, Unknown):
        return value.ext
    k = kind(ty)
    if k == "dynamic":
        if not isinstance(value, Dyn):
            value = Dyn(infer_type(value), value)
        return [type_bytes(value.type), to_msgpack(value.value, value.type)]
    if k == "number":
        return _number(value)
    if k == "string":
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {value!r}")
        return value
    if k == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"expected a bool, got {value!r}")
        return value
    if k in ("list", "set"):
        return [to_msgpack(v, ty[1]) for v in value]
    if k == "tuple":
        return [to_msgpack(v, t) for v, t in zip(value, ty[1], strict=True)]
    if k == "map":
        return {key: to_msgpack(v, ty[1]) for key, v in value.items()}
    if k == "object":
        return {name: to_msgpack(value.get(name), t) for name, t in ty[1].items()}
    raise ValueError(f"unsupported type {ty!r}")


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and _INT64[0] <= int(value) <= _INT64[1]:
            return int(value)
        return str(value)
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"expected a number, got {value!r}")


def to_plain(value: Any) -> Any:
    """JSON-ready form (dynamic values unwrapped, Decimals as numbers, unknowns as None)."""
    if isinstance(value, Dyn):
        return to_plain(value.value)
    if isinstance(value, Unknown):
        return None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def contains_unknown(value: Any) -> bool:
    if isinstance(value, Unknown):
        return True
    if isinstance(value, Dyn):
        return contains_unknown(value.value)
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    return False
