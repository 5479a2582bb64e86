"""A small typed model over `terraform show -json PLANFILE`: resource changes by address and action,
replacements, and output changes (before/after), which is all the summary and the safety gates read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The single action word for each `change.actions` list Terraform writes.
_ACTION_NAMES: dict[tuple[str, ...], str] = {
    ("no-op",): "no-op",
    ("create",): "create",
    ("read",): "read",
    ("update",): "update",
    ("delete",): "delete",
    ("forget",): "forget",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("create", "forget"): "replace",
}

# The order actions are shown in; also the keys of `Plan.counts()`.
ACTIONS: tuple[str, ...] = ("create", "update", "replace", "delete", "forget")


@dataclass(frozen=True)
class ResourceChange:
    """One managed resource instance the plan touches."""

    address: str
    type: str
    name: str
    module_address: str
    action: str
    before: Any
    after: Any
    after_unknown: Any = None
    action_reason: str = ""
    # Same shape as before/after with `true` at each sensitive leaf (or `true` for the whole value).
    before_sensitive: Any = None
    after_sensitive: Any = None
    replace_paths: tuple[tuple[str | int, ...], ...] = ()  # attributes that force the replacement

    @property
    def removes_object(self) -> bool:
        """True when the existing object is destroyed (delete, or the delete half of a replace)."""
        return self.action in ("delete", "replace")


@dataclass(frozen=True)
class OutputChange:
    """A root module output: its value before and after the plan (`after_known` False if computed)."""

    name: str
    action: str
    before: Any
    after: Any
    after_known: bool = True


@dataclass(frozen=True)
class Plan:
    """What `terraform show -json` says a saved plan will do."""

    terraform_version: str
    resource_changes: tuple[ResourceChange, ...]
    output_changes: Mapping[str, OutputChange] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    errored: bool = False

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Plan:
        changes = tuple(
            _resource_change(rc) for rc in doc.get("resource_changes") or () if rc.get("mode") == "managed"
        )
        outputs = {name: _output_change(name, oc) for name, oc in (doc.get("output_changes") or {}).items()}
        variables = {name: v.get("value") for name, v in (doc.get("variables") or {}).items()}
        return cls(
            terraform_version=str(doc.get("terraform_version", "")),
            resource_changes=changes,
            output_changes=outputs,
            variables=variables,
            errored=bool(doc.get("errored", False)),
        )

    @property
    def changes(self) -> tuple[ResourceChange, ...]:
        """Resource changes that do something (no-op and read excluded)."""
        return tuple(rc for rc in self.resource_changes if rc.action in ACTIONS)

    def by_action(self, action: str) -> tuple[ResourceChange, ...]:
        return tuple(rc for rc in self.resource_changes if rc.action == action)

    @property
    def replacements(self) -> tuple[ResourceChange, ...]:
        return self.by_action("replace")

    def counts(self) -> dict[str, int]:
        """Number of resource instances per action, every action present (zero when absent)."""
        return {action: len(self.by_action(action)) for action in ACTIONS}

    @property
    def has_changes(self) -> bool:
        return bool(self.changes) or any(oc.action != "no-op" for oc in self.output_changes.values())


def _action(actions: list[str] | None) -> str:
    key = tuple(actions or ("no-op",))
    return _ACTION_NAMES.get(key, "+".join(key))


def _resource_change(rc: Mapping[str, Any]) -> ResourceChange:
    change = rc.get("change") or {}
    return ResourceChange(
        address=str(rc["address"]),
        type=str(rc.get("type", "")),
        name=str(rc.get("name", "")),
        module_address=str(rc.get("module_address", "")),
        action=_action(change.get("actions")),
        before=change.get("before"),
        after=change.get("after"),
        after_unknown=change.get("after_unknown"),
        action_reason=str(rc.get("action_reason", "")),
        before_sensitive=change.get("before_sensitive"),
        after_sensitive=change.get("after_sensitive"),
        replace_paths=tuple(
            tuple(path) for path in change.get("replace_paths") or () if isinstance(path, list)
        ),
    )


def _output_change(name: str, oc: Mapping[str, Any]) -> OutputChange:
    return OutputChange(
        name=name,
        action=_action(oc.get("actions")),
        before=oc.get("before"),
        after=oc.get("after"),
        after_known=not _any_true(oc.get("after_unknown")),
    )


def _any_true(unknown: Any) -> bool:
    """`after_unknown` mirrors the value's shape with `true` at each leaf not known until apply."""
    if isinstance(unknown, Mapping):
        return any(_any_true(v) for v in unknown.values())
    if isinstance(unknown, list):
        return any(_any_true(v) for v in unknown)
    return unknown is True
