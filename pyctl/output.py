"""The one output layer of the CLI: a rich console and tables that behave the same in every command.

- Piped (not a terminal), lines are never wrapped or cut: the console is as wide as the longest line.
- The column a user copies (an instance type, an instance id) is never cut: it keeps its full width and
  other columns fold instead; no column is ever cut with an ellipsis.
- Colour follows the terminal and `NO_COLOR` (rich reads it); numbers are not highlighted, so "$73,930"
  stays one figure.
rich is imported inside the functions, so `pyctl --help` stays fast.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

PIPED_WIDTH = 10_000  # "unlimited": rich needs a number; tables only take the width they need


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders digits as numbers: g5.2xlarge < g5.12xlarge, a2-highgpu-2g < a2-highgpu-8g.

    An AWS size without a number counts as one (xlarge = 1xlarge, large = 0large), so xlarge comes first.
    """
    text = re.sub(r"\.xlarge$", ".1xlarge", re.sub(r"\.large$", ".0large", text))
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text))


def human_bytes(size: float) -> str:
    """Decimal units, as disks and clouds state them: 999 B, 1.5 kB, 4.97 GB, 1.2 TB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def colour_enabled() -> bool | None:
    """For click.echo(color=...): False under NO_COLOR (https://no-color.org), else click decides (a
    terminal gets colour, a pipe does not). rich reads NO_COLOR by itself."""
    return False if os.environ.get("NO_COLOR") else None


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    probe = Console(stderr=stderr)
    width = None if probe.is_terminal else PIPED_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)


def table(
    *columns: str, copy: str | None = None, title: str | None = None, right: tuple[str, ...] = ()
) -> Table:
    """A borderless table; `copy` names the column whose values are copied and must never be cut;
    `right` the columns aligned right (numbers)."""
    from rich.table import Table

    class _Table(Table):
        def add_row(self, *values: Any, **kwargs: Any) -> None:
            super().add_row(*values, **kwargs)
            for column, value in zip(self.columns, values, strict=False):
                if column.header == copy and isinstance(value, str):
                    column.min_width = max(column.min_width or 0, len(value), len(str(column.header)))

    tbl = _Table(box=None, title=title)
    for name in columns:
        tbl.add_column(
            name, overflow="fold", no_wrap=name == copy, justify="right" if name in right else "left"
        )
    return tbl
