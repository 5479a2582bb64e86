"""The one exception type a user can cause; the CLI maps it to a message and an exit code."""

from __future__ import annotations


class PyctlError(Exception):
    """A problem the user can fix: bad input, a refused plan, a missing file.

    The message is one line (or a few, one per problem) naming the file or field at fault.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
