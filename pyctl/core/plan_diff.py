"""Attribute-level changes of one resource, from `terraform show -json` (`change.before/after`,
`after_unknown`, `before_sensitive/after_sensitive`, `replace_paths`), for the pull-request comment.

Sensitive values are never rendered (the plan JSON carries them in clear text); values computed at apply
show as `(known after apply)`. Deleted resources list no attributes: the resource list already says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyctl.core.plan import ResourceChange

SENSITIVE = "(sensitive value)"
UNKNOWN = "(known after apply)"
MAX_VALUE_CHARS = 200  # one value (a user-data script, a policy document) never floods the comment
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

AttrPath = tuple[str | int, ...]  # keys and list indexes from the resource root


@dataclass(frozen=True)
class AttributeChange:
    path: str
    op: str  # "+" added, "-" removed, "!" changed
    before: str | None
    after: str | None
    forces_replacement: bool = False

    def line(self) -> str:
        mark = "  # forces replacement" if self.forces_replacement else ""
        if self.op == "+":
            return f"+ {self.path} = {self.after}{mark}"
        if self.op == "-":
            return f"- {self.path} = {self.before}{mark}"
        return f"! {self.path}: {self.before} -> {self.after}{mark}"


@dataclass(frozen=True)
class ResourceDiff:
    address: str
    action: str
    changes: tuple[AttributeChange, ...]


def _sub(mask: Any, key: str | int) -> Any:
    """The part of a sensitive/unknown mask under `key`; `true` covers everything below it."""
    if mask is True:
        return True
    if isinstance(mask, Mapping) and isinstance(key, str):
        return mask.get(key)
    if isinstance(mask, list) and isinstance(key, int) and key < len(mask):
        return mask[key]
    return None


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _leaves(
    value: Any, sensitive: Any, unknown: Any, prefix: AttrPath = ()
) -> dict[AttrPath, tuple[str, str]]:
    """Path -> (what to show, what to compare) for every non-null leaf; empty collections are left out."""
    if sensitive is True:
        return {prefix: (SENSITIVE, "s:" + json.dumps(value, sort_keys=True))}
    if unknown is True:
        return {prefix: (UNKNOWN, "unknown")}
    out: dict[AttrPath, tuple[str, str]] = {}
    if isinstance(value, Mapping) or isinstance(unknown, Mapping) and value is None:
        mapping = value if isinstance(value, Mapping) else {}
        extra = [k for k in (unknown if isinstance(unknown, Mapping) else {}) if k not in mapping]
        for key in [*sorted(mapping), *sorted(extra)]:
            out.update(_leaves(mapping.get(key), _sub(sensitive, key), _sub(unknown, key), (*prefix, key)))
        return out
    if isinstance(value, list):
        length = max(len(value), len(unknown) if isinstance(unknown, list) else 0)
        for i in range(length):
            item = value[i] if i < len(value) else None
            out.update(_leaves(item, _sub(sensitive, i), _sub(unknown, i), (*prefix, i)))
        return out
    if value is None:
        return out
    return {prefix: (_shown(value), "v:" + json.dumps(value, sort_keys=True))}


def path_text(path: AttrPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def resource_diff(rc: ResourceChange) -> ResourceDiff:
    """What changes in `rc`, attribute by attribute (none listed for deletes and forgets)."""
    if rc.action not in ("create", "update", "replace"):
        return ResourceDiff(rc.address, rc.action, ())
    before = {} if rc.action == "create" else _leaves(rc.before, rc.before_sensitive, None)
    after = _leaves(rc.after, rc.after_sensitive, rc.after_unknown)
    replace = [tuple(p) for p in rc.replace_paths]
    changes = []
    for path in [*after, *(p for p in before if p not in after)]:
        b, a = before.get(path), after.get(path)
        if b is not None and a is not None and b[1] == a[1]:
            continue
        op = "+" if b is None else "-" if a is None else "!"
        forces = any(path[: len(r)] == r for r in replace if r)
        changes.append(
            AttributeChange(
                path_text(path), op, b[0] if b else None, a[0] if a else None, forces_replacement=forces
            )
        )
    return ResourceDiff(rc.address, rc.action, tuple(changes))
