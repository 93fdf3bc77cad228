"""Dataset specs: validation, normalisation (defaults filled) and canonical descriptions.

A spec is a mapping ``{name, shifts: [{name, <param>: value}, ...], <option>: value, ...}``;
everything here is cheap (no data is loaded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from transferlab._helpers import plain
from transferlab.data import checks
from transferlab.data.registry import REQUIRED, DatasetEntry, get_dataset
from transferlab.data.shifts import get_shift
from transferlab.data.splits import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION
from transferlab.errors import ConfigError

#: Keys every spec may have besides the dataset's own options.
COMMON_KEYS = ("name", "shifts")
#: OmegaConf's marker for a mandatory value nobody filled in.
MISSING_MARKER = "???"


def _plain(value: Any) -> Any:
    """`plain`, with an unfilled (`???`) or unresolvable value as a one-line ConfigError."""
    if isinstance(value, (DictConfig, ListConfig)):
        try:
            value = OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as exc:
            msg = str(exc).splitlines()[0]
            raise ConfigError(f"dataset spec cannot be resolved: {msg}") from None
    return plain(value)


def _split_options(entry: DatasetEntry) -> dict[str, Any]:
    """Split options a dataset accepts, with defaults."""
    options: dict[str, Any] = {"val_fraction": DEFAULT_VAL_FRACTION}
    if not entry.official_test:
        options["test_fraction"] = DEFAULT_TEST_FRACTION
    return options


def dataset_defaults(name: str) -> dict[str, Any]:
    """All options of dataset ``name`` (split fractions included) with their defaults."""
    entry = get_dataset(name)
    return {**entry.options, **_split_options(entry)}


def _fill(
    where: str,
    given: Mapping[str, Any],
    defaults: Mapping[str, Any],
    what: str,
    also: Sequence[str] = (),
) -> dict[str, Any]:
    """``given`` completed with ``defaults``; ConfigError for unknown or missing keys."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        listed = ", ".join(repr(k) for k in unknown)
        valid = ", ".join(sorted([*defaults, *also])) or "(none)"
        raise ConfigError(f"unknown {what}(s) {listed} for {where}; valid {what}s: {valid}")
    out: dict[str, Any] = {}
    for key, default in defaults.items():
        value = given.get(key, default)
        if value is REQUIRED or value == MISSING_MARKER:
            raise ConfigError(f"{where} needs {what} {key!r} (e.g. {key}=...)")
        out[key] = value
    return out


def _normalize_shift(index: int, shift: Any) -> dict[str, Any]:
    if not isinstance(shift, Mapping) or "name" not in shift:
        raise ConfigError(f"shift #{index + 1} must be a mapping with a 'name', got {shift!r}")
    entry = get_shift(shift["name"])
    where = f"shift {entry.name}"
    params = _fill(
        where, {k: v for k, v in shift.items() if k != "name"}, entry.params, "parameter"
    )
    if entry.check is not None:
        entry.check(where, params)
    return {"name": entry.name, **params}


def normalize_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec as a plain JSON-able dict with every option and shift parameter filled in.

    Raises ConfigError (one line) for an unknown dataset, shift, key or parameter, a missing
    required value or a bad value. Two specs that mean the same data normalise equally.
    """
    plain = _plain(spec)
    if not isinstance(plain, Mapping):
        raise ConfigError(f"dataset spec must be a mapping, got {plain!r}")
    if "name" not in plain:
        raise ConfigError(f"dataset spec needs a 'name', got keys {sorted(plain)}")
    entry = get_dataset(plain["name"])
    where = f"dataset {entry.name}"
    given = {k: v for k, v in plain.items() if k not in COMMON_KEYS}
    options = _fill(where, given, dataset_defaults(entry.name), "key", COMMON_KEYS)
    checks.fraction(where, "val_fraction", options["val_fraction"])
    if "test_fraction" in options:
        checks.fraction(where, "test_fraction", options["test_fraction"])
    if entry.check is not None:
        entry.check(options)
    shifts = plain.get("shifts") or []
    if not isinstance(shifts, list):
        raise ConfigError(f"{where}: shifts must be a list, got {shifts!r}")
    normalized = [_normalize_shift(i, s) for i, s in enumerate(shifts)]
    return {"name": entry.name, **options, "shifts": normalized}


def validate_spec(spec: Mapping[str, Any]) -> None:
    """Check a spec without loading anything; ConfigError (one line) naming the bad value."""
    normalize_spec(spec)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return str(value)


def _args(values: Mapping[str, Any], defaults: Mapping[str, Any], hidden: Sequence[str]) -> str:
    """``(k=v,...)`` of the non-default, non-hidden values, or '' if none."""
    shown = [
        f"{k}={_fmt(v)}"
        for k, v in values.items()
        if k not in hidden and (defaults.get(k, REQUIRED) is REQUIRED or v != defaults[k])
    ]
    return f"({','.join(shown)})" if shown else ""


def describe_normalized(norm: Mapping[str, Any]) -> str:
    """The description of an already normalised spec (see :func:`describe`)."""
    entry = get_dataset(norm["name"])
    options = {k: v for k, v in norm.items() if k not in COMMON_KEYS}
    parts = [entry.name + _args(options, dataset_defaults(entry.name), entry.hidden_options)]
    for shift in norm["shifts"]:
        params = {k: v for k, v in shift.items() if k != "name"}
        parts.append(shift["name"] + _args(params, get_shift(shift["name"]).params, ()))
    return "+".join(parts)


def describe(spec: Mapping[str, Any]) -> str:
    """Canonical, stable description without loading: the dataset name with its non-default
    options, then each shift with its non-default parameters, e.g. ``digits+rotate(degrees=45)``."""
    return describe_normalized(normalize_spec(spec))
