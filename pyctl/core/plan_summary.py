"""What a reviewer must see in a plan: counts by action, GPU capacity change per pool, replacements, and
the destroys that lose reserved capacity, model/checkpoint data, or anything in a protected env.

GPU capacity is read from the root module output `gpu_capacity` (before and after): a map of pool name to
`{cloud, capacity, instance_type, gpu, gpus_per_instance, instances}`; see docs/terraform-workflow.md.
Reserved capacity, capacity blocks and buckets are also recognised by resource type.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyctl.core.cost import (
    CostChange,
    EnvOutlook,
    cost_change_markdown,
    cost_change_text,
    money,
    outlook_markdown,
    outlook_text,
)
from pyctl.core.plan import ACTIONS, Plan, ResourceChange
from pyctl.core.plan_diff import ResourceDiff, resource_diff

GPU_CAPACITY_OUTPUT = "gpu_capacity"
RESERVED_CAPACITY_TYPES = frozenset(
    {"aws_ec2_capacity_reservation", "aws_ec2_capacity_block_reservation", "google_compute_reservation"}
)
BUCKET_TYPES = frozenset({"aws_s3_bucket", "google_storage_bucket"})
# Bought for a fixed term; `terraform destroy` only forgets it, the money is spent.
CAPACITY_BLOCK_TYPE = "aws_ec2_capacity_block_reservation"
# GitHub rejects issue/PR comments over 65,536 characters; stay well under.
MARKDOWN_LIMIT = 60_000
# One resource's attribute diff shows at most this many attributes.
DIFF_ATTRIBUTE_LIMIT = 60
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
class MonthlyTotals:
    """The env's monthly cost (all pools, not only the changed ones) before and after the plan."""

    before: float
    after: float
    unpriced: tuple[str, ...] = ()  # pools without a price, left out of both totals

    @property
    def percent(self) -> float | None:
        return None if self.before == 0 else (self.after - self.before) / self.before * 100


@dataclass(frozen=True)
class CiRun:
    """The CI run that made the plan, for the comment's links (from GitHub's own run variables)."""

    url: str
    run_id: str


def ci_run_from_env(environ: Mapping[str, str]) -> CiRun | None:
    """GITHUB_SERVER_URL / GITHUB_REPOSITORY / GITHUB_RUN_ID, set on every GitHub Actions runner."""
    run_id, repo = environ.get("GITHUB_RUN_ID", ""), environ.get("GITHUB_REPOSITORY", "")
    if not run_id or not repo:
        return None
    server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    return CiRun(url=f"{server}/{repo}/actions/runs/{run_id}", run_id=run_id)


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
    diffs: tuple[ResourceDiff, ...] = ()  # attribute-level changes per resource, in plan order
    monthly: MonthlyTotals | None = None  # the env's whole monthly cost before and after the plan
    fail_above: float | None = None  # `plan --fail-above`: the largest monthly increase allowed (USD)
    outlook: EnvOutlook | None = None  # env.yaml's month: expected, and worst case with every pool at max

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


def summarize(
    plan: Plan,
    *,
    env: str,
    protected: bool,
    cost_change: CostChange | None = None,
    monthly: MonthlyTotals | None = None,
    outlook: EnvOutlook | None = None,
) -> PlanSummary:
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
        diffs=tuple(d for d in (resource_diff(rc) for rc in plan.changes) if d.changes),
        monthly=monthly,
        outlook=outlook,
    )


def cost_limit_refusal(summary: PlanSummary) -> str | None:
    """Why the plan breaks `--fail-above` (a rise above the limit, or a rise that cannot be priced)."""
    limit = summary.fail_above
    if limit is None:
        return None
    unknown = [c.pool for c in summary.pool_changes if not c.after_known]
    unknown += [p.pool for p in summary.cost_change.unpriced]
    if unknown:
        return (
            f"cannot check --fail-above {money(limit)}: no monthly cost for pool(s) {', '.join(sorted(set(unknown)))} "
            f"(size known only after apply, or no price: add pricing.overrides in env.yaml)"
        )
    rise = summary.cost_change.total
    if rise > limit:
        return (
            f"the plan raises env {summary.env}'s monthly cost by {money(rise)}, more than "
            f"--fail-above {money(limit)}"
        )
    return None


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
    if summary.monthly is not None:
        lines.append(f"Monthly cost of env {summary.env}: {_monthly_text(summary.monthly)}")
    if summary.outlook is not None and summary.outlook.pools:
        lines += outlook_text(summary.outlook)
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


def _monthly_text(m: MonthlyTotals) -> str:
    if m.after == m.before:
        text = f"{money(m.before)} (unchanged)"
    else:
        pct = "new" if m.percent is None else f"{m.percent:+.1f}%"
        text = f"{money(m.before)} -> {money(m.after)} ({money(m.after - m.before, signed=True)}, {pct})"
    return text + (f"; not priced: {', '.join(m.unpriced)}" if m.unpriced else "")


def _fence(lines: list[str]) -> str:
    """A code fence longer than any backtick run inside, so a value cannot close it."""
    runs = [len(r) for line in lines for r in re.findall(r"`+", line)]
    return "`" * max(3, max(runs, default=0) + 1)


def _diff_block(diff: ResourceDiff) -> str:
    lines = [c.line() for c in diff.changes[:DIFF_ATTRIBUTE_LIMIT]]
    if len(diff.changes) > DIFF_ATTRIBUTE_LIMIT:
        lines.append(
            f"# ... and {len(diff.changes) - DIFF_ATTRIBUTE_LIMIT} more attributes (see the plan artifact)"
        )
    fence = _fence(lines)
    n = len(diff.changes)
    title = (
        f"<code>{_SYMBOL.get(diff.action, diff.action)} {html.escape(diff.address)}</code>: {diff.action}, "
    )
    title += f"{n} attribute{'s' if n != 1 else ''}"
    return "\n".join(
        [f"<details><summary>{title}</summary>", "", f"{fence}diff", *lines, fence, "</details>"]
    )


def render_markdown(summary: PlanSummary, *, max_chars: int = MARKDOWN_LIMIT, ci: CiRun | None = None) -> str:
    """The pull-request comment, under `max_chars`: attribute diffs are cut first (whole resources, from the
    end), then long lists ("... and N more"); counts, GPU capacity, cost and next steps are always kept."""
    blocks = [_diff_block(d) for d in summary.diffs]
    text = _markdown(summary, None, ci, blocks, 0)
    if len(text) <= max_chars:
        return text
    # Keep as many whole diffs as fit beside everything else.
    kept = 0
    budget = max_chars - len(_markdown(summary, None, ci, [], len(blocks)))
    for block in blocks:
        if budget - len(block) - 1 < 0:
            break
        budget -= len(block) + 1
        kept += 1
    text = _markdown(summary, None, ci, blocks[:kept], len(blocks) - kept)
    if len(text) <= max_chars:
        return text
    limit: int | None = None
    while True:
        text = _markdown(summary, limit, ci, [], len(blocks))
        if len(text) <= max_chars:
            return text
        longest = max(len(summary.changes), len(summary.findings), len(summary.replacements))
        limit = (longest if limit is None else limit) // 2
        if limit == 0:
            return _markdown(summary, 0, ci, [], len(blocks))[:max_chars]


def _cost_limit_markdown(summary: PlanSummary) -> list[str]:
    if summary.fail_above is None:
        return []
    refusal = cost_limit_refusal(summary)
    if refusal:
        return ["> [!WARNING]", f"> This check fails: {refusal}.", ""]
    return [
        f"Within the monthly cost limit: at most {money(summary.fail_above, signed=True)} (`--fail-above`).",
        "",
    ]


def _next_steps(summary: PlanSummary, ci: CiRun | None) -> list[str]:
    env = summary.env
    out = ["#### Next steps", ""]
    if not summary.changes and not summary.pool_changes:
        out.append(f"- Nothing to apply: merging this leaves the infrastructure of `{env}` as it is.")
    elif ci is not None:
        out.append(
            f"- **Apply**: merge this pull request. `apply.yml` waits for approval of the GitHub environment "
            f"`{env}`, then applies exactly this plan (artifact `plan-{env}` of [run {ci.run_id}]({ci.url}))."
        )
    else:
        out.append(
            f"- **Apply**: `pyctl plan --env {env} --out {env}.tfplan`, review, then "
            f"`pyctl apply --env {env} --plan {env}.tfplan`."
        )
    if cost_limit_refusal(summary):
        out.append(
            "- The cost check fails, so this plan is not uploaded for apply: shrink the change, or raise the "
            "limit (`--fail-above`; in CI the variable `PYCTL_FAIL_ABOVE`) and re-plan."
        )
    if summary.gated("allow_destroy"):
        out.append("- Destroys protected capacity or data: add the PR label `allow-destroy` before merging.")
    if summary.gated("confirm_purchase"):
        out.append("- Buys an EC2 capacity block: add the PR label `confirm-purchase` before merging.")
    replan = f"push a commit, or re-run the plan: `gh run rerun {ci.run_id}`" if ci else "run it again"
    out.append(f"- **Re-plan**: {replan}; locally: `pyctl plan --env {env}`.")
    return [*out, ""]


def _markdown(
    summary: PlanSummary, limit: int | None, ci: CiRun | None, diff_blocks: list[str], diffs_left_out: int
) -> str:
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
    if summary.monthly is not None:
        out += [
            f"**Monthly cost of `{summary.env}`**: {_monthly_text(summary.monthly).replace('->', '→')}",
            "",
        ]
    if summary.outlook is not None and summary.outlook.pools:
        out += [*outlook_markdown(summary.outlook), ""]
    out += _cost_limit_markdown(summary)
    if summary.replacements:
        out += ["#### Replacements", ""]
        out += [f"- `{a}`" for a in _limited(list(summary.replacements), limit)]
        out.append("")
    if summary.changes:
        out += [f"<details><summary>{summary.total} resource changes</summary>", "", "```diff"]
        out += _limited([f"{_SYMBOL.get(a, a)} {addr}" for a, addr in summary.changes], limit)
        out += ["```", "</details>", ""]
    else:
        out += ["No resource changes.", ""]
    if diff_blocks or diffs_left_out:
        out += ["#### Attribute changes", "", *diff_blocks]
        if diffs_left_out:
            out.append(
                f"_Attribute changes of {diffs_left_out} more resource(s) left out to fit GitHub's comment limit; "
                f"`terraform show PLANFILE` on the plan artifact shows them all._"
            )
        out.append("")
    out += _next_steps(summary, ci)
    if ci is not None:
        out.append(f"[Plan run {ci.run_id}]({ci.url})")
    return "\n".join(out).rstrip("\n") + "\n"


_STAGES = {
    "render": "validating and rendering `env.yaml`",
    "lock": "checking the committed provider lock file",
    "init": "`terraform init`",
    "providers": "`terraform providers lock`",
    "plan": "`terraform plan`",
    "show": "reading the saved plan (`terraform show`)",
}
FAILURE_DETAIL_LIMIT = 20_000


def render_failure_markdown(env: str, stage: str, error: str, *, ci: CiRun | None = None) -> str:
    """The pull-request comment when the plan could not be made: which stage failed, the error, what next."""
    detail = (
        error
        if len(error) <= FAILURE_DETAIL_LIMIT
        else error[:FAILURE_DETAIL_LIMIT] + "\n... (cut; see the run log)"
    )
    lines = detail.splitlines() or [""]
    fence = _fence(lines)
    out = [
        COMMENT_MARKER.format(env=env),
        f"### :x: pyctl plan: `{env}` failed while {_STAGES.get(stage, f'`{stage}`')}",
        "",
        "No plan was made, so there is nothing to review or apply for this env.",
        "",
        f"{fence}text",
        *lines,
        fence,
        "",
        "#### Next steps",
        "",
        f"- Reproduce locally: `pyctl plan --env {env}`; fix it and push a commit: the plan runs again.",
    ]
    if ci is not None:
        out.append(f"- Transient (a lock, a timeout)? Re-run: `gh run rerun {ci.run_id} --failed`.")
        out += ["", f"[Run log]({ci.url})"]
    return "\n".join(out) + "\n"
