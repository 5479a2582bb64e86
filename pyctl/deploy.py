"""init / plan / apply / up / destroy / output for one env, on top of `pyctl.terraform`.

Every apply goes through a saved plan: `up` and `destroy` plan, summarise, gate and confirm, then apply
exactly that plan. A plan saved with `plan --out` carries a manifest binding it to its env, rendered
inputs, lock file and terraform version; `apply --plan` re-checks all of them before terraform runs.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyctl.core.manifest import sha256_file
from pyctl.core.plan import Plan
from pyctl.core.plan_gates import gate_refusals
from pyctl.core.plan_manifest import MANIFEST_SUFFIX, PlanManifest, inputs_digest, mismatches
from pyctl.core.plan_summary import (
    GPU_CAPACITY_OUTPUT,
    CiRun,
    MonthlyTotals,
    PlanSummary,
    render_failure_markdown,
    render_markdown,
    render_text,
    summarize,
)
from pyctl.errors import PyctlError
from pyctl.terraform import (
    LOCK_ERROR,
    LOCK_FILE,
    STALE_PLAN_ERROR,
    Terraform,
    TerraformFailed,
    TerraformInterrupted,
    apply_argv,
    force_unlock_argv,
    init_argv,
    plan_argv,
    providers_lock_argv,
)

if TYPE_CHECKING:
    from pyctl.spec import EnvSpec

# Where `plan` without --out, `up` and `destroy` keep their plan: inside the ignored .terraform dir.
WORK_PLAN = Path(".terraform") / "pyctl.tfplan"


@dataclass(frozen=True)
class EnvTarget:
    """One env as terraform sees it: its root module and the files `pyctl render` wrote for it."""

    name: str
    root: Path
    protected: bool
    inputs: tuple[Path, ...]  # every rendered file; hashed into the plan manifest
    var_files: tuple[Path, ...] = ()  # passed as -var-file (files terraform does not load by itself)
    backend_config: Path | None = None
    spec: EnvSpec | None = field(default=None, compare=False)  # prices the plan's monthly cost change


@dataclass(frozen=True)
class GateFlags:
    allow_destroy: bool = False
    confirm_purchase: bool = False


@dataclass(frozen=True)
class PlanResult:
    plan_file: Path
    plan: Plan
    summary: PlanSummary
    manifest: PlanManifest | None  # written only for `plan --out`


Echo = Callable[[str], None]
Confirm = Callable[[str], bool]


def git_commit(root: Path) -> str:
    """The checked-out commit, for the reviewer's record; "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def current_manifest(
    tf: Terraform, target: EnvTarget, plan_file: Path, *, destroy: bool = False
) -> PlanManifest:
    """What a manifest for `plan_file` says now: hashes of the plan, inputs and lock file, and versions."""
    inputs = {_relative(p, target.root): sha256_file(p) for p in target.inputs}
    lock = target.root / LOCK_FILE
    return PlanManifest(
        env=target.name,
        plan_sha256=sha256_file(plan_file),
        inputs_sha256=inputs_digest(inputs),
        lock_file_sha256=sha256_file(lock) if lock.exists() else None,
        terraform_version=tf.version(),
        git_commit=git_commit(target.root),
        inputs=inputs,
        destroy=destroy,
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def manifest_path(plan_file: Path) -> Path:
    return plan_file.with_name(plan_file.name + MANIFEST_SUFFIX)


# --- verbs ------------------------------------------------------------------------------------------


def init(
    tf: Terraform,
    target: EnvTarget,
    *,
    lock_timeout: str | None = None,
    readonly_lock: bool = False,
    lock_platforms: tuple[str, ...] = (),
    fs_mirror: Path | None = None,
) -> None:
    """terraform init; with `lock_platforms`, first `providers lock` so the lock file has every platform's hashes."""
    if lock_platforms:
        _run(tf, target, providers_lock_argv(target.root, lock_platforms, fs_mirror=fs_mirror))
    argv = init_argv(
        target.root,
        backend_config=target.backend_config,
        lock_timeout=lock_timeout,
        readonly_lock=readonly_lock,
    )
    _run(tf, target, argv)


def require_lock_file(target: EnvTarget) -> None:
    """Refuse an env whose provider lock file is not committed (CI never picks provider versions itself)."""
    if not (target.root / LOCK_FILE).is_file():
        where = _relative(target.root / LOCK_FILE, Path.cwd())
        raise PyctlError(
            f"env {target.name} has no {LOCK_FILE} ({where}): run `pyctl init --env {target.name}` where the "
            f"providers can be downloaded and commit the lock file it writes",
            exit_code=1,
        )


def plan(
    tf: Terraform,
    target: EnvTarget,
    *,
    out: Path | None = None,
    destroy: bool = False,
    lock_timeout: str | None = None,
    detailed_exitcode: bool = False,
    locked: bool = False,
) -> PlanResult:
    """init, plan -out, show -json; with `out`, writes the manifest beside the plan file.

    `locked`: the committed lock file must exist and init may not change it (CI)."""
    if locked:
        require_lock_file(target)
    plan_file = (out or target.root / WORK_PLAN).resolve()
    plan_file.parent.mkdir(parents=True, exist_ok=True)
    # An older plan's manifest must not vouch for whatever this run leaves at the same path.
    manifest_path(plan_file).unlink(missing_ok=True)
    init(tf, target, lock_timeout=lock_timeout, readonly_lock=locked)
    argv = plan_argv(
        target.root,
        out=plan_file,
        var_files=target.var_files,
        destroy=destroy,
        detailed_exitcode=detailed_exitcode,
        lock_timeout=lock_timeout,
    )
    _run(tf, target, argv, ok_codes=(0, 2) if detailed_exitcode else (0,))
    parsed = tf.show_plan(target.root, plan_file)
    manifest = None
    if out is not None:  # a plan to be reviewed now and applied later
        manifest = current_manifest(tf, target, plan_file, destroy=destroy)
        manifest_path(plan_file).write_text(manifest.to_json())
    summary = _summarize(parsed, target)
    return PlanResult(plan_file, parsed, summary, manifest)


def _summarize(parsed: Plan, target: EnvTarget) -> PlanSummary:
    from pyctl.catalog.prices import env_outlook, plan_cost  # pydantic: kept out of `pyctl --help`

    cost = plan_cost(parsed, target.spec)
    return summarize(
        parsed,
        env=target.name,
        protected=target.protected,
        cost_change=cost,
        monthly=monthly_totals(parsed, target.spec),
        outlook=None if target.spec is None else env_outlook(target.spec),
    )


def monthly_totals(parsed: Plan, spec: EnvSpec | None) -> MonthlyTotals | None:
    """The env's monthly cost over every pool of `gpu_capacity`, before and after (None: sizes unknown)."""
    from pyctl.catalog.prices import env_pricer
    from pyctl.core.cost import env_cost, plan_regions, pools_from_output

    change = parsed.output_changes.get(GPU_CAPACITY_OUTPUT)
    if change is None or not change.after_known:
        return None
    hours = {}
    if spec is not None:
        hours = {
            p.name: p.expected_hours_per_month for p in spec.pools if p.expected_hours_per_month is not None
        }
    price = env_pricer(plan_regions(parsed.variables), spec.pricing if spec is not None else None)
    before = env_cost(pools_from_output(change.before, hours).values(), price)
    after = env_cost(pools_from_output(change.after, hours).values(), price)
    unpriced = sorted({c.pool.name for c in (*before.missing, *after.missing)})
    return MonthlyTotals(before.monthly, after.monthly, tuple(unpriced))


def verify_reviewed_plan(tf: Terraform, target: EnvTarget, plan_file: Path) -> PlanManifest:
    """Refuse, naming each failed check, a plan that is not the one reviewed for this env and these inputs."""
    mpath = manifest_path(plan_file)
    if not plan_file.is_file():
        raise PyctlError(f"{plan_file}: plan file not found")
    if not mpath.is_file():
        raise PyctlError(f"{mpath}: manifest not found; make the plan with `pyctl plan --env ENV --out FILE`")
    try:
        reviewed = PlanManifest.from_json(mpath.read_text())
    except (ValueError, TypeError) as exc:
        raise PyctlError(f"{mpath}: not a pyctl plan manifest ({exc})") from exc
    problems = mismatches(reviewed, current_manifest(tf, target, plan_file, destroy=reviewed.destroy))
    if problems:
        raise PyctlError(f"refusing to apply {plan_file}: " + "; ".join(problems))
    return reviewed


def apply_reviewed(
    tf: Terraform,
    target: EnvTarget,
    plan_file: Path,
    *,
    gates: GateFlags = GateFlags(),
    lock_timeout: str | None = None,
    echo: Echo = print,
) -> PlanSummary:
    """Apply a plan saved by `plan --out` after checking its manifest and the safety gates."""
    plan_file = plan_file.resolve()
    verify_reviewed_plan(tf, target, plan_file)
    init(tf, target, lock_timeout=lock_timeout, readonly_lock=True)
    summary = _summarize(tf.show_plan(target.root, plan_file), target)
    echo(render_text(summary))
    _check_gates(summary, gates)
    _apply(tf, target, plan_file, lock_timeout)
    return summary


def up(
    tf: Terraform,
    target: EnvTarget,
    *,
    auto_approve: bool,
    confirm: Confirm,
    gates: GateFlags = GateFlags(),
    destroy: bool = False,
    lock_timeout: str | None = None,
    summary_md: Path | None = None,
    echo: Echo = print,
) -> PlanSummary | None:
    """init -> plan -> summary -> gates -> confirm -> apply that saved plan. None when declined."""
    result = plan(tf, target, destroy=destroy, lock_timeout=lock_timeout)
    echo(render_text(result.summary))
    if summary_md is not None:
        summary_md.write_text(render_markdown(result.summary))
    if not result.plan.has_changes:
        echo("No changes. Nothing to apply.")
        return result.summary
    _check_gates(result.summary, gates)
    verb = "destroy everything in" if destroy else "apply this plan to"
    if not auto_approve and not confirm(f"Do you want to {verb} env {target.name}?"):
        echo("Not applied.")
        return None
    _apply(tf, target, result.plan_file, lock_timeout)
    return result.summary


def outputs(tf: Terraform, target: EnvTarget, name: str | None = None) -> Any:
    if not (target.root / ".terraform" / "terraform.tfstate").exists():  # backend not initialised yet
        init(tf, target)
    try:
        return tf.outputs(target.root, name)
    except TerraformFailed as exc:
        raise _explained(exc, target) from exc


def force_unlock(tf: Terraform, target: EnvTarget, lock_id: str) -> None:
    init(tf, target)
    _run(tf, target, force_unlock_argv(target.root, lock_id))


def write_summary_md(summary: PlanSummary, path: Path, *, ci: CiRun | None = None) -> None:
    path.write_text(render_markdown(summary, ci=ci))


@dataclass
class FailureReport:
    """Where a plan run is; the stage is named in the failure comment when it fails there."""

    env: str
    stage: str = "render"


@contextmanager
def failure_report(env: str, summary_md: Path | None, *, ci: CiRun | None = None) -> Iterator[FailureReport]:
    """On a PyctlError inside, write a failure comment to `summary_md` (when given), then re-raise: a pull
    request hears about a failed render, init or plan instead of getting no comment at all."""
    report = FailureReport(env=Path(env).name)
    try:
        yield report
    except PyctlError as exc:
        if summary_md is not None:
            stage = exc.verb if isinstance(exc, TerraformFailed) else report.stage
            summary_md.parent.mkdir(parents=True, exist_ok=True)
            summary_md.write_text(render_failure_markdown(report.env, stage, str(exc), ci=ci))
        raise


# --- helpers ----------------------------------------------------------------------------------------


def _check_gates(summary: PlanSummary, gates: GateFlags) -> None:
    refusals = gate_refusals(
        summary, allow_destroy=gates.allow_destroy, confirm_purchase=gates.confirm_purchase
    )
    if refusals:
        raise PyctlError("refusing to apply: " + "; ".join(refusals))


def _apply(tf: Terraform, target: EnvTarget, plan_file: Path, lock_timeout: str | None) -> None:
    _run(tf, target, apply_argv(target.root, plan_file, lock_timeout=lock_timeout))


def _run(tf: Terraform, target: EnvTarget, argv: list[str], ok_codes: tuple[int, ...] = (0,)) -> None:
    try:
        tf.run(argv, ok_codes=ok_codes)
    except TerraformFailed as exc:
        raise _explained(exc, target) from exc


_LOCK_FIELD = re.compile(r"^\s*(ID|Path|Operation|Who|Version|Created|Info):\s*(.*)$", re.MULTILINE)


def lock_info(detail: str) -> dict[str, str]:
    """The `Lock Info:` fields terraform prints when the state is locked."""
    return {key: value.strip() for key, value in _LOCK_FIELD.findall(detail)}


def _explained(exc: TerraformFailed, target: EnvTarget) -> PyctlError:
    """Terraform's error, with what to do next when it was interrupted, or it is a held lock or a stale plan."""
    if isinstance(exc, TerraformInterrupted):
        return _interrupted(exc, target)
    for diag in exc.result.errors():
        if diag.summary == LOCK_ERROR:
            info = lock_info(diag.detail)
            lock_id = info.get("ID", "LOCK_ID")
            return PyctlError(
                f"state of env {target.name} is locked by {info.get('Who', 'unknown')} "
                f"(operation {info.get('Operation', '?')}, since {info.get('Created', '?')}, lock ID {lock_id}). "
                f"If that run is still going, wait for it or retry with --lock-timeout=5m; if it died, release "
                f"the lock: pyctl force-unlock --env {target.name} {lock_id}",
                exit_code=1,
            )
        if diag.summary == STALE_PLAN_ERROR:
            return PyctlError(
                f"terraform refused the saved plan for env {target.name}: {diag.summary}: "
                f"{' '.join(diag.detail.split())} Make and review a new plan (pyctl plan --env {target.name}).",
                exit_code=1,
            )
    return exc


def _interrupted(exc: TerraformInterrupted, target: EnvTarget) -> PyctlError:
    """What an interrupted terraform left: for an apply, what it saved and how to see the rest."""
    head = f"terraform {exc.verb} of env {target.name} was interrupted"
    if exc.verb != "apply":
        return PyctlError(
            f"{head} (exit {exc.result.returncode}); nothing was applied", exit_code=exc.exit_code
        )
    if exc.interrupts == 1:
        how = "stopped gracefully"
        after = "it saved the state of what it finished and released the lock"
    else:
        how = "stopped at once (second interrupt)"
        after = "the state may lack what was in flight, and the lock may still be held"
    return PyctlError(
        f"{head} and {how} (exit {exc.result.returncode}): {after}. See what is left: pyctl plan --env {target.name}",
        exit_code=exc.exit_code,
    )
