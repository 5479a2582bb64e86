"""`pyctl validate | render | doctor`: an env's spec, its rendered Terraform inputs, and the local setup."""

from __future__ import annotations

import click

from pyctl.commands import ENV_HELP, JSON_HELP
from pyctl.completion import complete_env
from pyctl.errors import PyctlError


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@click.command()
@click.option("--env", "env", required=True, help=ENV_HELP, shell_complete=complete_env)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def validate(env: str, as_json: bool) -> None:
    """Validate env.yaml against the schema and the GPU catalog (exit 2 naming each field at fault)."""
    import json

    from pyctl.spec import load_env

    loaded = load_env(env)
    pools = [p.name for p in loaded.spec.pools]
    if as_json:
        click.echo(json.dumps({"path": str(loaded.path), "env": loaded.name, "valid": True, "pools": pools}))
        return
    click.echo(f"{loaded.path}: valid, {plural(len(pools), 'pool')} ({', '.join(pools)})")


@click.command()
@click.option("--env", "env", required=True, help=ENV_HELP, shell_complete=complete_env)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 naming each file that differs (for CI).")
def render(env: str, check: bool) -> None:
    """Render terraform.tfvars.json and backend.hcl from env.yaml, byte-identically on every run.

    Also builds the env's function zips (watchdog, spot recovery) into .pyctl-build/ and names them,
    with their hashes, in functions.auto.tfvars.json, and one node agent bundle per cloud
    (.pyctl-build/agent-<cloud>.tar.gz, named with its sha256 in agent_bundles.auto.tfvars.json; its
    dependency wheels come hash-pinned from $PYCTL_CACHE_DIR, fetched once through pip's configured
    index): build artifacts, not committed, not --check'ed.
    """
    from pyctl.render import check_rendered, render_env, write_rendered
    from pyctl.spec import display_path, load_env

    rendered = render_env(load_env(env))
    if check:
        check_rendered(rendered)
        click.echo(f"{display_path(rendered.env_dir)}: rendered files are up to date")
        return
    written = write_rendered(rendered)
    for path in rendered.paths():
        click.echo(f"{'wrote' if path in written else 'unchanged'} {display_path(path)}")


@click.command()
@click.option(
    "--env",
    "env",
    default=None,
    help=ENV_HELP + " Adds env, credential and backend checks.",
    shell_complete=complete_env,
)
@click.option(
    "--terraform", "terraform", default=None, envvar="PYCTL_TERRAFORM", help="Terraform executable."
)
@click.option("--strict", is_flag=True, help="Exit 1 on a warning too, not only on a failed check (CI).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def doctor(env: str | None, terraform: str | None, strict: bool, as_json: bool) -> None:
    """Show which terraform runs and whether credentials and the state backend answer.

    Exit 1 when a required check fails (with --strict: or warns), else 0.
    """
    import json

    from pyctl.doctor import run_checks
    from pyctl.output import console, table
    from pyctl.spec import load_env

    checks = run_checks(load_env(env) if env else None, terraform)
    if as_json:
        click.echo(json.dumps([{"check": c.name, "status": c.status, "detail": c.detail} for c in checks]))
    else:
        tbl = table("check", "status", "detail")
        colour = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
        for c in checks:
            tbl.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.detail)
        console().print(tbl)
    if any(c.status == "fail" for c in checks):
        raise PyctlError("doctor: a required check failed (see above)", exit_code=1)
    if strict and any(c.status == "warn" for c in checks):
        raise PyctlError("doctor --strict: a check warned (see above)", exit_code=1)
