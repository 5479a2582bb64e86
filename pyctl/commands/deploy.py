"""`pyctl init | plan | apply | up | destroy | output | force-unlock --env NAME`.

Each command parses its options, renders the env (so terraform always sees what env.yaml says), and calls
one function of `pyctl.deploy`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pyctl.commands import ENV_HELP
from pyctl.completion import complete_env
from pyctl.deploy import EnvTarget, GateFlags
from pyctl.errors import PyctlError

# `plan --detailed-exitcode` when the plan has changes: apart from 1 (failure) and 2 (invalid input).
EXIT_CHANGES = 3


def prepare_target(env: str) -> EnvTarget:
    """Load and validate env.yaml, write its rendered files, and describe the env for terraform."""
    from pyctl.render import BACKEND_FILE, render_env, write_rendered
    from pyctl.spec import load_env

    loaded = load_env(env)
    rendered = render_env(loaded)
    write_rendered(rendered)
    return EnvTarget(
        name=loaded.name,
        root=loaded.dir.resolve(),
        protected=loaded.spec.env.protected,
        inputs=tuple(p.resolve() for p in rendered.paths()),
        # terraform.tfvars.json is loaded by terraform itself; only the backend file is passed explicitly.
        backend_config=(loaded.dir / BACKEND_FILE).resolve() if BACKEND_FILE in rendered.files else None,
        spec=loaded.spec,
    )


def _terraform(executable: str | None) -> Any:
    from pyctl.terraform import Terraform, resolve_executable

    return Terraform(resolve_executable(executable))


_TERRAFORM = click.option(
    "--terraform",
    "terraform_path",
    metavar="PATH",
    help="terraform/tofu executable (default: $PYCTL_TERRAFORM, terraform or tofu on PATH, bundled pyctl-terraform).",
)


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = _TERRAFORM(fn)
    fn = click.option(
        "--lock-timeout",
        metavar="DURATION",
        default=None,
        help="How long to wait for the state lock, e.g. 5m (default: fail at once).",
    )(fn)
    return click.option("--env", "env", required=True, help=ENV_HELP, shell_complete=complete_env)(fn)


def _gates(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--confirm-purchase",
        is_flag=True,
        help="Allow a plan that buys an EC2 capacity block (not refundable).",
    )(fn)
    return click.option(
        "--allow-destroy",
        is_flag=True,
        help="In a protected env, allow destroying or replacing reserved capacity or cache buckets.",
    )(fn)


_SUMMARY_MD = click.option(
    "--summary-md",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the summary as Markdown (a pull-request comment) to FILE.",
)


@click.command("init")
@_common
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    metavar="OS_ARCH",
    envvar="PYCTL_LOCK_PLATFORMS",
    help="Record provider hashes in .terraform.lock.hcl for this platform (repeat; default: linux_amd64, "
    "linux_arm64, darwin_amd64, darwin_arm64; $PYCTL_LOCK_PLATFORMS, space-separated).",
)
@click.option(
    "--fs-mirror",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Lock providers from this local mirror directory instead of the registry.",
)
def init_cmd(
    env: str,
    terraform_path: str | None,
    lock_timeout: str | None,
    platforms: tuple[str, ...],
    fs_mirror: Path | None,
) -> None:
    """Render the env, write .terraform.lock.hcl for every platform (commit it), and run terraform init."""
    from pyctl import deploy
    from pyctl.terraform import DEFAULT_LOCK_PLATFORMS

    deploy.init(
        _terraform(terraform_path),
        prepare_target(env),
        lock_timeout=lock_timeout,
        lock_platforms=platforms or DEFAULT_LOCK_PLATFORMS,
        fs_mirror=fs_mirror,
    )


@click.command("plan")
@_common
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the plan to FILE and its manifest to FILE.manifest.json, for `pyctl apply --plan FILE`.",
)
@_SUMMARY_MD
@click.option("--destroy", is_flag=True, help="Plan destroying everything in the env.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of text.")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help=f"Exit {EXIT_CHANGES} when the plan has changes, 0 when none (drift checks); failures stay 1 and 2.",
)
@click.option(
    "--require-lock-file",
    is_flag=True,
    help="Refuse an env without a committed .terraform.lock.hcl, and never change it (CI).",
)
@click.option(
    "--fail-above",
    type=click.FloatRange(min=0),
    metavar="USD",
    help="Exit 1 (after writing the summary) when the plan raises the env's monthly cost by more than USD.",
)
def plan_cmd(
    env: str,
    terraform_path: str | None,
    lock_timeout: str | None,
    out: Path | None,
    summary_md: Path | None,
    destroy: bool,
    as_json: bool,
    detailed_exitcode: bool,
    require_lock_file: bool,
    fail_above: float | None,
) -> None:
    """Render, init and plan; print the summary (GPU capacity, cost, replacements, dangerous destroys).

    With --summary-md, a failed render, init or plan writes a failure report to that file instead."""
    import dataclasses
    import os

    from pyctl import deploy
    from pyctl.core.plan_summary import ci_run_from_env, cost_limit_refusal, render_text

    ci = ci_run_from_env(os.environ)
    with deploy.failure_report(env, summary_md, ci=ci) as report:
        target = prepare_target(env)
        if require_lock_file:
            report.stage = "lock"
            deploy.require_lock_file(target)
        report.stage = "plan"
        result = deploy.plan(
            _terraform(terraform_path),
            target,
            out=out,
            destroy=destroy,
            lock_timeout=lock_timeout,
            detailed_exitcode=detailed_exitcode,
            locked=require_lock_file,
        )
    summary = dataclasses.replace(result.summary, fail_above=fail_above)
    if as_json:
        click.echo(json.dumps(_summary_json(result, out), indent=2))
    else:
        _summary_echo(GateFlags())(render_text(summary))
    if summary_md is not None:
        deploy.write_summary_md(summary, summary_md, ci=ci)
    if out is not None and not as_json:
        click.echo(f"Saved plan: {out}\nManifest:   {deploy.manifest_path(out)}")
    refusal = cost_limit_refusal(summary)
    if refusal:
        raise PyctlError(refusal, exit_code=1)
    if detailed_exitcode and result.plan.has_changes:
        raise SystemExit(EXIT_CHANGES)


def _summary_json(result: Any, out: Path | None) -> dict[str, Any]:
    """`pyctl plan --json`: the summary's facts, for scripts."""
    from pyctl import deploy

    s = result.summary
    return {
        "env": s.env,
        "protected": s.protected,
        "has_changes": result.plan.has_changes,
        "counts": dict(s.counts),
        "changes": [{"action": action, "address": address} for action, address in s.changes],
        "replacements": list(s.replacements),
        "findings": [
            {"kind": f.kind, "address": f.address, "message": f.message, "gate": f.gate or None}
            for f in s.findings
        ],
        "pools": [
            {
                "pool": c.pool,
                "instances_before": c.before.instances if c.before else 0,
                "instances_after": (c.after.instances if c.after else 0) if c.after_known else None,
                "gpu_delta": c.gpu_delta if c.after_known else None,
            }
            for c in s.pool_changes
        ],
        "monthly_cost_change": None if not s.cost_change.pools else round(s.cost_change.total, 2),
        "plan_file": None if out is None else str(out),
        "manifest": None if out is None else str(deploy.manifest_path(out)),
    }


@click.command("apply")
@_common
@click.option(
    "--plan",
    "plan_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A plan saved by `pyctl plan --out FILE` (its manifest must sit beside it).",
)
@_gates
def apply_cmd(
    env: str,
    terraform_path: str | None,
    lock_timeout: str | None,
    plan_file: Path,
    allow_destroy: bool,
    confirm_purchase: bool,
) -> None:
    """Apply a reviewed plan, refusing it if the plan file, env, inputs, lock file or terraform changed."""
    from pyctl import deploy

    gates = GateFlags(allow_destroy=allow_destroy, confirm_purchase=confirm_purchase)
    deploy.apply_reviewed(
        _terraform(terraform_path),
        prepare_target(env),
        plan_file,
        gates=gates,
        lock_timeout=lock_timeout,
        echo=_summary_echo(gates),
    )


_AUTO_APPROVE = click.option(
    "-y",
    "--yes",
    "--auto-approve",
    "auto_approve",
    is_flag=True,
    help="Apply without asking (CI). Without it, stdin must be a terminal.",
)

# Gate hints of the plan summary (pyctl.core.plan_summary) -> (the flag, what to say once it was given).
_GATE_HINTS = {
    "  Applying this plan needs --allow-destroy (protected env).": (
        "allow_destroy",
        "  --allow-destroy given: this plan may destroy the items above.",
    ),
    "  Applying this plan needs --confirm-purchase (capacity blocks cannot be refunded).": (
        "confirm_purchase",
        "  --confirm-purchase given: this plan may buy the capacity block above.",
    ),
}


def _summary_echo(gates: GateFlags) -> Callable[[str], None]:
    """Echo the plan summary: the ATTENTION block in red (when colour is on), and a gate hint whose flag
    was given says so instead of asking for it."""
    from pyctl.output import colour_enabled

    def echo(text: str) -> None:
        out, attention = [], False
        for line in text.splitlines():
            flag, given = _GATE_HINTS.get(line, ("", ""))
            if flag and getattr(gates, flag):
                line = given
            attention = line == "!!! ATTENTION !!!" or (attention and line.startswith("  "))
            out.append(click.style(line, fg="red", bold=True) if attention else line)
        click.echo("\n".join(out), color=colour_enabled())

    return echo


def _ask(target: EnvTarget, destroy: bool) -> Callable[[str], bool]:
    """y/N, or, to destroy a protected env, typing its name."""

    def confirm(question: str) -> bool:
        if destroy and target.protected:
            answer = click.prompt(
                f"{question}\nEnv {target.name} is protected: type its name to confirm",
                default="",
                show_default=False,
            )
            return bool(answer.strip() == target.name)
        return click.confirm(question, default=False)

    return confirm


def _require_terminal(auto_approve: bool, command: str) -> None:
    """Terraform's rule: no prompt without a terminal; say which flag to pass instead."""
    if not auto_approve and not sys.stdin.isatty():
        raise PyctlError(
            f"{command}: stdin is not a terminal, so pyctl cannot ask for confirmation; nothing was done. "
            "Pass --yes (-y) to apply without asking, or review with `pyctl plan --out FILE` and "
            "`pyctl apply --plan FILE`",
            exit_code=2,
        )


def _up_command(name: str, *, destroy: bool, doc: str) -> click.Command:
    """`up` and `destroy`: plan (a destroy plan for `destroy`), summary, gates, confirm, apply that plan."""

    @click.command(name, help=doc)
    @_common
    @_AUTO_APPROVE
    @_gates
    @_SUMMARY_MD
    def command(
        env: str,
        terraform_path: str | None,
        lock_timeout: str | None,
        auto_approve: bool,
        allow_destroy: bool,
        confirm_purchase: bool,
        summary_md: Path | None,
    ) -> None:
        from pyctl import deploy

        _require_terminal(auto_approve, name)
        target = prepare_target(env)
        gates = GateFlags(allow_destroy=allow_destroy, confirm_purchase=confirm_purchase)
        summary = deploy.up(
            _terraform(terraform_path),
            target,
            auto_approve=auto_approve,
            confirm=_ask(target, destroy),
            gates=gates,
            destroy=destroy,
            lock_timeout=lock_timeout,
            summary_md=summary_md,
            echo=_summary_echo(gates),
        )
        if summary is None:
            raise PyctlError(f"{name}: not confirmed; nothing was applied", exit_code=1)

    return command


up_cmd = _up_command(
    "up",
    destroy=False,
    doc="Render -> init -> plan -> summary -> confirm (y/N) -> apply exactly that saved plan.\n\n"
    "Declining exits 1; without a terminal on stdin pass --yes (exit 2 otherwise).",
)
destroy_cmd = _up_command(
    "destroy",
    destroy=True,
    doc="Plan destroying the env, show the summary, confirm (y/N), then apply that saved destroy plan.\n\n"
    "A protected env asks for its name to be typed. Declining exits 1; without a terminal pass --yes.",
)


@click.command("output")
@click.option("--env", "env", required=True, help=ENV_HELP, shell_complete=complete_env)
@_TERRAFORM
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default for maps and lists).")
def output_cmd(env: str, terraform_path: str | None, name: str | None, as_json: bool) -> None:
    """Print the env's Terraform outputs (all, or NAME)."""
    from pyctl import deploy

    value = deploy.outputs(_terraform(terraform_path), prepare_target(env), name)
    if name is not None and not as_json and isinstance(value, str | int | float | bool):
        click.echo(value)
    else:
        click.echo(json.dumps(value, indent=2, sort_keys=True))


@click.command("force-unlock")
@click.option("--env", "env", required=True, help=ENV_HELP, shell_complete=complete_env)
@_TERRAFORM
@click.argument("lock_id")
def force_unlock_cmd(env: str, terraform_path: str | None, lock_id: str) -> None:
    """Release a state lock left behind by a run that died (LOCK_ID from the lock error)."""
    from pyctl import deploy

    deploy.force_unlock(_terraform(terraform_path), prepare_target(env), lock_id)
    click.echo(f"Released lock {lock_id} on env {env}.")
