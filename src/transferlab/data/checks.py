"""Small value checks for dataset options and shift parameters (ConfigError, one line)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from transferlab.errors import ConfigError, choice_error


def number(
    where: str,
    key: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float within the bounds, else ConfigError naming the key."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
        raise ConfigError(f"{where}: {key} must be in {interval}, got {value!r}")
    return float(value)


def integer(where: str, key: str, value: object, *, low: int | None = None) -> int:
    """``value`` as an int (not a bool) at least ``low``, else ConfigError naming ``where.key``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{where}: {key} must be at least {low}, got {value!r}")
    return value


def choice(where: str, key: str, value: object, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``, else the standard choice error."""
    choices = list(choices)
    if value not in choices:
        raise choice_error(f"{where} {key}", value, choices)
    return str(value)


def fraction(where: str, key: str, value: object) -> float:
    """A fraction strictly between 0 and 1."""
    return number(where, key, value, low=0.0, high=1.0, low_open=True, high_open=True)
