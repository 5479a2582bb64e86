"""Shell completion helpers (click's own completion; README "Output, colour, JSON, shell completion")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def complete_env(ctx: Any, param: Any, incomplete: str) -> list[Any]:
    """`--env` completes to the env names under infra/envs/ (or $PYCTL_ENVS_DIR), else to directories."""
    from click.shell_completion import CompletionItem

    if "/" in incomplete:
        return [CompletionItem(incomplete, type="dir")]
    envs = Path(os.environ["PYCTL_ENVS_DIR"]) if "PYCTL_ENVS_DIR" in os.environ else _envs_dir()
    names = sorted(p.parent.name for p in envs.glob("*/env.yaml")) if envs else []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def _envs_dir() -> Path | None:
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "infra" / "envs").is_dir():
            return candidate / "infra" / "envs"
    return None
