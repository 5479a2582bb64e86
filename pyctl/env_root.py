"""An env's root module, rendered from one template and the stacks' own variable types.

Every env root is the same thin layer (providers, backend, the stack calls, two outputs), so it is
generated rather than copied three times. Its variables carry the exact types of the stack variables they
feed, read from `infra/stacks/<cloud>/variables.tf` at render time: no `type = any`, and a stack's type
change reaches every env at the next `pyctl render` (which `render --check` enforces in CI). The
validation blocks stay in the stacks.

An env dir whose `main.tf` does not start with the rendered marker is left alone (a hand-written root,
like the workflow tests' fixture env).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from pyctl.errors import PyctlError

MARKER = "# Rendered by `pyctl render"
ROOT_FILES = ("main.tf", "variables.tf", "outputs.tf")
STACKS = Path("..") / ".." / "stacks"  # from an env dir under infra/envs/
CHECKOUT_STACKS = Path(__file__).resolve().parents[1] / "infra" / "stacks"  # pyctl run from a checkout

_VARIABLE = re.compile(r'^variable "([a-z0-9_]+)" \{$', re.M)


def is_rendered_root(env_dir: Path) -> bool:
    main = env_dir / "main.tf"
    return not main.exists() or main.read_text(encoding="utf-8").startswith(MARKER)


def _expression_end(text: str, start: int) -> int:
    """The end of the expression starting at `start`: brackets balanced, strings and comments skipped."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "#":
            while text[i] != "\n":
                i += 1
            continue
        elif c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == "\n" and depth == 0:
            return i
        i += 1
    return i


def variable_types(variables_tf: Path) -> dict[str, str]:
    """name -> the text of its `type = ...` expression, as written (terraform fmt keeps it indented for a
    variable block, which is where the template puts it again)."""
    text = variables_tf.read_text(encoding="utf-8")
    types: dict[str, str] = {}
    for match in _VARIABLE.finditer(text):
        body_start = match.end()
        body_end = text.index("\n}\n", body_start)
        type_line = re.compile(r"^  type\s*=\s*", re.M).search(text, body_start, body_end)
        if type_line is None:
            raise PyctlError(f"{variables_tf}: variable {match.group(1)!r} has no type")
        types[match.group(1)] = text[type_line.end() : _expression_end(text, type_line.end())]
    return types


def object_attribute(type_text: str, name: str) -> str:
    """The type of attribute `name` of an `object({...})` type expression (one level down)."""
    match = re.search(rf"^\s*{re.escape(name)}\s*=\s*", type_text, re.M)
    if match is None:
        raise PyctlError(f"object type has no attribute {name!r}")
    return type_text[match.end() : _expression_end(type_text, match.end())]


def stacks_dir(env_dir: Path) -> Path:
    """The stacks the env's root calls: `../../stacks` for an env under infra/envs/, else (an env dir
    elsewhere) the stacks of the checkout pyctl runs from."""
    for candidate in ((env_dir / STACKS).resolve(), CHECKOUT_STACKS):
        if (candidate / "aws").is_dir() or (candidate / "gcp").is_dir():
            return candidate
    raise PyctlError(f"{env_dir}: no infra/stacks beside it (../../stacks) nor in a pyctl checkout")


def stack_types(stacks: Path, clouds: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for cloud in clouds:
        types: dict[str, str] = {}
        for tf in sorted((stacks / cloud).glob("*.tf")):
            if _VARIABLE.search(tf.read_text(encoding="utf-8")):
                types.update(variable_types(tf))
        if not types:
            raise PyctlError(f"no stack at {stacks / cloud}")
        out[cloud] = types
    return out


def attributes(pairs: list[tuple[str, str]], indent: str = "  ") -> str:
    """`key = value` lines aligned as `terraform fmt` aligns them: consecutive single-line attributes share
    one column; an attribute whose value spans lines stands alone."""
    out: list[str] = []
    group: list[tuple[str, str]] = []

    def flush() -> None:
        width = max((len(k) for k, _ in group), default=0)
        out.extend(f"{indent}{k.ljust(width)} = {v}" for k, v in group)
        group.clear()

    for key, value in pairs:
        if "\n" in value:
            flush()
            out.append(f"{indent}{key} = {value}")
        else:
            group.append((key, value))
    flush()
    return "\n".join(out)


def render_root(
    env_dir: Path, env_name: str, clouds: list[str], backend: str, render_template: Callable[..., str]
) -> dict[str, bytes]:
    """The root module's files for an env using `clouds` ("aws", "gcp") and a `backend` ("s3", "gcs")."""
    if not is_rendered_root(env_dir):
        return {}
    stacks = stacks_dir(env_dir)
    types = stack_types(stacks, clouds)
    sources = {c: Path(os.path.relpath(stacks / c, env_dir.resolve())).as_posix() for c in clouds}
    context = {
        "sources": sources,
        "env": env_name,
        "aws": "aws" in clouds,
        "gcp": "gcp" in clouds,
        "backend": backend,
        "types": types,
        "attributes": attributes,
    }
    first = clouds[0]
    # One model_cache variable feeds every stack: each cloud's bucket settings come from its own stack.
    context["model_cache_parts"] = {
        "models": object_attribute(types[first]["model_cache"], "models"),
        "nvme_path": object_attribute(types[first]["model_cache"], "nvme_path"),
        **{cloud: object_attribute(types[cloud]["model_cache"], cloud) for cloud in clouds},
    }
    # The AWS stack's watchdog settings are a superset of the GCP stack's (the AWS-only metric and
    # notification fields); a GCP-only env takes the GCP stack's.
    context["watchdog_type"] = types["aws" if "aws" in clouds else "gcp"]["watchdog"]
    return {name: render_template(f"env_root/{name}.j2", **context).encode() for name in ROOT_FILES}
