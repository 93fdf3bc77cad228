"""User-facing errors: bad input is reported as one line naming the bad value and the choices."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """A bad setting found before (or instead of) training; the CLI prints it as one line."""


def choice_error(kind: str, value: object, choices: Iterable[object]) -> ConfigError:
    """Build the standard error for a value that is not one of the valid choices."""
    listed = ", ".join(str(c) for c in sorted(choices, key=str))
    return ConfigError(f"unknown {kind} {value!r}; valid choices: {listed}")


class GridError(BaseException):
    """A ConfigError in one job of a sweep grid, found before any job starts. A BaseException,
    so that it passes Hydra's own error report and reaches the command line, which prints it as
    one line and exits with status 2."""
