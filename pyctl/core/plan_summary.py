"""What a reviewer must see in a plan: counts by action, GPU capacity change per pool, replacements, and
the destroys that lose reserved capacity, model/checkpoint data, or anything in a protected env.

GPU capacity is read from the root module output `gpu_capacity` (before and after): a map of pool name to
`{cloud, capacity, instance_type, gpu, gpus_per_instance, instances}`; see docs/terraform-workflow.md.
Reserved capacity, capacity blocks and buckets are also recognised by resource type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyctl.core.cost import CostChange, cost_change_markdown, cost_change_text
from pyctl.core.plan import ACTIONS, Plan, ResourceChange

GPU_CAPACITY_OUTPUT = "gpu_capacity"
RESERVED_CAPACITY_TYPES = frozenset(
    {"aws_ec2_capacity_reservation", "aws_ec2_capacity_block_reservation", "google_compute_reservation"}
)
BUCKET_TYPES = frozenset({"aws_s3_bucket", "google_storage_bucket"})
# Bought for a fixed term; `terraform destroy` only forgets it, the money is spent.
CAPACITY_BLOCK_TYPE = "aws_ec2_capacity_block_reservation"
# GitHub rejects issue/PR comments over 65,536 characters; stay well under.
MARKDOWN_LIMIT = 60_000
COMMENT_MARKER = "<!-- pyctl-plan-summary env={env} -->"


@dataclass(frozen=True)
class PoolState:
    """One GPU pool as the `gpu_capacity` output describes it."""

    cloud: str
    capacity_kind: str
    instance_type: str
    gpu: str
    gpus_per_instance: int
    instances: int

    @property
    def gpus(self) -> int:
        return self.gpus_per_instance * self.instances


@dataclass(frozen=True)
class PoolChange:
    """A pool whose capacity the plan changes; `after` None when removed, `before` None when new."""

    pool: str
    before: PoolState | None
    after: PoolState | None
    after_known: bool = True

    @property
    def instance_delta(self) -> int:
        return (self.after.instances if self.after else 0) - (self.before.instances if self.before else 0)

    @property
    def gpu_delta(self) -> int:
        return (self.after.gpus if self.after else 0) - (self.before.gpus if self.before else 0)

    @property
    def reduces_reserved(self) -> bool:
        """Reserved instances are lost: pool removed, shrunk, or moved to another type/kind."""
        b, a = self.before, self.after
        if b is None or b.capacity_kind != "reserved" or not self.after_known:
            return False
        return (
            a is None
            or a.instances < b.instances
            or (a.instance_type, a.capacity_kind) != (b.instance_type, b.capacity_kind)
        )


@dataclass(frozen=True)
class Finding:
    """A loud line in the summary; `gate` names the flag that must be given to apply it, if any."""

    kind: str  # reserved_capacity | bucket | protected | capacity_block
    address: str
    message: str
    gate: str = ""


@dataclass(frozen=True)
class PlanSummary:
    env: str
    protected: bool
    counts: Mapping[str, int]
    pool_changes: tuple[PoolChange, ...]
    replacements: tuple[str, ...]
    findings: tuple[Finding, ...]
    changes: tuple[tuple[str, str], ...]  # (action, address) in plan order
    cost_change: CostChange = CostChange(())  # monthly cost change per pool (pyctl.core.cost)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def gpu_totals(self) -> dict[tuple[str, str, str], tuple[int, int]]:
        """(gpu, instance_type, capacity_kind) -> (instances delta, GPUs delta), zero deltas dropped."""
        totals: dict[tuple[str, str, str], tuple[int, int]] = {}
        for change in self.pool_changes:
            for state, sign in ((change.before, -1), (change.after, 1)):
                if state is None:
                    continue
                key = (state.gpu, state.instance_type, state.capacity_kind)
                inst, gpus = totals.get(key, (0, 0))
                totals[key] = (inst + sign * state.instances, gpus + sign * state.gpus)
        return {k: v for k, v in sorted(totals.items()) if v != (0, 0)}

    def gated(self, gate: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.gate == gate)


def summarize(plan: Plan, *, env: str, protected: bool, cost_change: CostChange | None = None) -> PlanSummary:
    pool_changes = _pool_changes(plan)
    findings = [*_resource_findings(plan.changes, protected), *_pool_findings(pool_changes, protected)]
    return PlanSummary(
        env=env,
        protected=protected,
        counts=plan.counts(),
        pool_changes=pool_changes,
        replacements=tuple(rc.address for rc in plan.replacements),
        findings=tuple(findings),
        changes=tuple((rc.action, rc.address) for rc in plan.changes),
        cost_change=cost_change or CostChange(()),
    )


def _pool_state(value: Any) -> PoolState | None:
    if not isinstance(value, Mapping):
        return None
    try:
        return PoolState(
            cloud=str(value.get("cloud", "")),
            capacity_kind=str(value["capacity"]),
            instance_type=str(value["instance_type"]),
            gpu=str(value["gpu"]),
            gpus_per_instance=int(value["gpus_per_instance"]),
            instances=int(value["instances"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _pools(value: Any) -> dict[str, PoolState]:
    if not isinstance(value, Mapping):
        return {}
    states = {str(name): _pool_state(v) for name, v in value.items()}
    return {name: s for name, s in states.items() if s is not None}


def _pool_changes(plan: Plan) -> tuple[PoolChange, ...]:
    output = plan.output_changes.get(GPU_CAPACITY_OUTPUT)
    if output is None:
        return ()
    before, after = _pools(output.before), _pools(output.after)
    changes = []
    for name in sorted(before.keys() | after.keys()):
        b, a = before.get(name), after.get(name)
        if b != a:
            changes.append(PoolChange(pool=name, before=b, after=a, after_known=output.after_known))
    return tuple(changes)


def _resource_findings(changes: tuple[ResourceChange, ...], protected: bool) -> list[Finding]:
    findings = []
    for rc in changes:
        verb = "REPLACES" if rc.action == "replace" else "DESTROYS"
        gate = "allow_destroy" if protected else ""
        if rc.type == CAPACITY_BLOCK_TYPE and rc.action in ("create", "replace"):
            findings.append(
                Finding("capacity_block", rc.address, _capacity_block_text(rc), "confirm_purchase")
            )
        if not rc.removes_object:
            continue
        if rc.type in RESERVED_CAPACITY_TYPES:
            findings.append(Finding("reserved_capacity", rc.address, f"{verb} reserved GPU capacity", gate))
        elif rc.type in BUCKET_TYPES:
            findings.append(
                Finding("bucket", rc.address, f"{verb} a bucket that may hold models or checkpoints", gate)
            )
        elif protected:
            findings.append(Finding("protected", rc.address, f"{verb} a resource in a protected env"))
    return findings


def _capacity_block_text(rc: ResourceChange) -> str:
    after = rc.after if isinstance(rc.after, Mapping) else {}
    count, itype = after.get("instance_count", "?"), after.get("instance_type", "?")
    return f"BUYS an EC2 capacity block ({count} x {itype}); destroy cannot undo the purchase"


def _pool_findings(pool_changes: tuple[PoolChange, ...], protected: bool) -> list[Finding]:
    findings = []
    for change in pool_changes:
        if change.reduces_reserved and change.before is not None:
            after = change.after.instances if change.after else 0
            message = (
                f"RELEASES reserved GPU capacity: pool {change.pool} "
                f"{change.before.instances} -> {after} reserved instances"
            )
            gate = "allow_destroy" if protected else ""
            findings.append(Finding("reserved_capacity", f"pool {change.pool}", message, gate))
    return findings


# --- rendering -------------------------------------------------------------------------------------


def _signed(n: int) -> str:
    return f"{n:+d}"


def counts_line(summary: PlanSummary) -> str:
    parts = [
        f"{summary.counts.get(a, 0)} to {a}" for a in ACTIONS if summary.counts.get(a, 0) or a != "forget"
    ]
    return "Plan: " + ", ".join(parts) + "."


def _pool_line(change: PoolChange) -> str:
    state = change.after or change.before
    assert state is not None  # a PoolChange always has one side
    before = change.before.instances if change.before else 0
    if not change.after_known:
        return f"{change.pool} ({state.cloud} {state.capacity_kind}): {before} -> (known after apply)"
    after = change.after.instances if change.after else 0
    what = f"{state.instance_type}, {state.gpus_per_instance}x {state.gpu}"
    label = " (new pool)" if change.before is None else " (pool removed)" if change.after is None else ""
    return (
        f"{change.pool}{label} [{state.cloud} {state.capacity_kind}, {what}]: "
        f"{before} -> {after} instances ({_signed(change.instance_delta)}), {_signed(change.gpu_delta)} GPUs"
    )


def _gpu_total_lines(summary: PlanSummary) -> list[str]:
    return [
        f"{_signed(gpus)} {gpu} GPUs ({_signed(inst)} x {itype}, {kind})"
        for (gpu, itype, kind), (inst, gpus) in summary.gpu_totals().items()
    ]


def _limited(items: list[str], limit: int | None) -> list[str]:
    if limit is None or len(items) <= limit:
        return items
    return [*items[:limit], f"... and {len(items) - limit} more (see the plan artifact)"]


def render_text(summary: PlanSummary, *, limit: int | None = 50) -> str:
    """The terminal summary shown before the y/N prompt."""
    title = f"Plan for env {summary.env}" + (" (PROTECTED)" if summary.protected else "")
    lines = [title, counts_line(summary)]
    if summary.pool_changes:
        lines.append("GPU capacity:")
        lines += [f"  {line}" for line in _gpu_total_lines(summary)]
        lines += [f"  {_pool_line(c)}" for c in summary.pool_changes]
    lines += cost_change_text(summary.cost_change)
    if summary.replacements:
        lines.append("Replacements (destroy, then create):")
        lines += [f"  ~ {a}" for a in _limited(list(summary.replacements), limit)]
    if summary.findings:
        lines.append("!!! ATTENTION !!!")
        lines += [f"  !! {f.address}: {f.message}" for f in _limited_findings(summary, limit)]
        lines += _gate_hints(summary)
    return "\n".join(lines) + "\n"


def _limited_findings(summary: PlanSummary, limit: int | None) -> list[Finding]:
    findings = list(summary.findings)
    if limit is None or len(findings) <= limit:
        return findings
    rest = len(findings) - limit
    return [*findings[:limit], Finding("more", "...", f"and {rest} more (see the plan artifact)")]


def _gate_hints(summary: PlanSummary) -> list[str]:
    hints = []
    if summary.gated("allow_destroy"):
        hints.append("  Applying this plan needs --allow-destroy (protected env).")
    if summary.gated("confirm_purchase"):
        hints.append("  Applying this plan needs --confirm-purchase (capacity blocks cannot be refunded).")
    return hints


_SYMBOL = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "forget": "."}


def render_markdown(summary: PlanSummary, *, max_chars: int = MARKDOWN_LIMIT) -> str:
    """The pull-request comment: under `max_chars`, long lists truncated, totals always kept."""
    limit: int | None = None
    while True:
        text = _markdown(summary, limit)
        if len(text) <= max_chars:
            return text
        longest = max(len(summary.changes), len(summary.findings), len(summary.replacements))
        limit = (longest if limit is None else limit) // 2
        if limit == 0:
            return _markdown(summary, 0)[:max_chars]


def _markdown(summary: PlanSummary, limit: int | None) -> str:
    icon = ":warning: " if summary.findings else ""
    protected = " (protected)" if summary.protected else ""
    out = [
        COMMENT_MARKER.format(env=summary.env),
        f"### {icon}pyctl plan: `{summary.env}`{protected}",
        "",
        "| create | update | replace | delete | forget |",
        "|---:|---:|---:|---:|---:|",
        "| " + " | ".join(str(summary.counts.get(a, 0)) for a in ACTIONS) + " |",
        "",
    ]
    if summary.findings:
        out += ["> [!CAUTION]", "> This plan needs attention:"]
        out += [f"> - **{f.address}**: {f.message}" for f in _limited_findings(summary, limit)]
        out += [f">{hint[1:]}" for hint in _gate_hints(summary)]
        out.append("")
    if summary.pool_changes:
        out += ["#### GPU capacity", ""]
        out += [f"- **{line}**" for line in _gpu_total_lines(summary)]
        out += ["", "| pool | cloud | kind | type | instances | GPUs |", "|---|---|---|---|---:|---:|"]
        for c in summary.pool_changes:
            s = c.after or c.before
            assert s is not None  # a PoolChange always has one side
            before = c.before.instances if c.before else 0
            after = (c.after.instances if c.after else 0) if c.after_known else "?"
            gpus = _signed(c.gpu_delta) if c.after_known else "?"
            out.append(
                f"| {c.pool} | {s.cloud} | {s.capacity_kind} | {s.instance_type} ({s.gpus_per_instance}x {s.gpu})"
                f" | {before} → {after} | {gpus} |"
            )
        out.append("")
    out += cost_change_markdown(summary.cost_change)
    if summary.replacements:
        out += ["#### Replacements", ""]
        out += [f"- `{a}`" for a in _limited(list(summary.replacements), limit)]
        out.append("")
    if summary.changes:
        out += [f"<details><summary>{summary.total} resource changes</summary>", "", "```diff"]
        out += _limited([f"{_SYMBOL.get(a, a)} {addr}" for a, addr in summary.changes], limit)
        out += ["```", "</details>"]
    else:
        out.append("No resource changes.")
    return "\n".join(out) + "\n"
