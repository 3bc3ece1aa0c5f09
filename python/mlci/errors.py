"""User-facing errors.

Anything the user can fix (bad config, bad input file, missing object) is raised as a UserError so the CLI
prints one clear message and exits 2 instead of a traceback. Exit codes follow the accuracy engine's
contract: 0 pass, 1 fail, 2 bad input, 3 inconclusive.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3


def clip(value: object, limit: int = 80) -> str:
    """repr() of a value from user input, shortened: an error message must stay readable when the value is a
    70,000-character string."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 12]}...({len(text):,} chars)"


class UserError(Exception):
    """A problem with the user's input: says what is wrong, where, and how to fix it."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  fix: {self.hint}"
        return text


class StageFailed(Exception):
    """A pipeline stage ran and failed (not a user-input problem); carries the exit code to propagate."""

    def __init__(self, message: str, exit_code: int = EXIT_FAIL):
        super().__init__(message)
        self.exit_code = exit_code
