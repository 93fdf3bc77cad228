"""A paper's claims as data (`claims.yaml`), checked before any training.

A claim is one statistic with an interval, compared with a threshold fixed before the run:

- `paired`: the mean over seeds of a per-seed difference between two arms' selected runs (arm
  `a` minus arm `b`, each run chosen on its own seed's validation), with a t interval. `b`
  names only what differs from `a`; `b: scratch` is the scratch arm of `a`'s target setting.
  `value: acc` (test accuracy, default) or `gain` (fine-tuned minus scratch at the same seed,
  so `a` and `b` may then differ in the target size).
- `interval`: one row of an analysis table (`cells`, `methods`, `adaptation`, `drift_gain`, ...)
  with its estimate and interval, as the analysis computed them.

`expect: above|below` says on which side of `threshold` the paper puts the statistic.
`for_each: [column, ...]` checks the claim at every value of those columns the study has;
the claim holds where every check passes. Cells are named by the analysis' columns (`source`,
`target`, `target_size`, `freeze_depth`, `method`, ...) with the values its tables print.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from transferlab.analysis.keys import ARM, SCRATCH
from transferlab.errors import ConfigError, choice_error

#: The statistics a claim can be.
TESTS = ("paired", "interval")
#: Sides of the threshold.
EXPECTS = ("above", "below")
#: Per-seed values a paired claim can compare.
VALUES = ("acc", "gain")
#: Columns a claim may select cells by (the analysis' keys, and a drift step's).
CELL_COLUMNS = (
    *ARM,
    "adapt_selection",
    "objective",
    "source_data",
    "strategy",
    "step",
    "space",
    "distance",
    "score",
    "baseline",
    "arm",
)
#: The tables an interval claim can read: estimate, interval, sample size and what it counts.
TABLES: dict[str, tuple[str, str, str, str, str]] = {
    "cells": ("gain", "ci_low", "ci_high", "n_pairs", "paired seeds"),
    "methods": ("d_vs_finetune", "ci_low", "ci_high", "n_pairs", "paired seeds"),
    "objectives": ("d_vs_supervised", "ci_low", "ci_high", "n_pairs", "paired seeds"),
    "adaptation": ("d_vs_source_only", "ci_low", "ci_high", "n_pairs", "paired seeds"),
    "adaptation_shift": ("change", "change_low", "change_high", "n", "paired seeds"),
    "drift_gain": ("gain", "ci_low", "ci_high", "n_pairs", "paired seeds"),
    "drift": ("test_acc", "ci_low", "ci_high", "n_seeds", "seeds"),
    "forgetting": ("forgotten", "forgotten_low", "forgotten_high", "n_seeds", "seeds"),
    "ranking": ("tau", "ci_low", "ci_high", "seeds", "seeds"),
    "shift_gain": ("spearman", "spearman_low", "spearman_high", "n", "(source, target) pairs"),
    "drift_shift": ("spearman", "spearman_low", "spearman_high", "n", "drift steps"),
    "transfer_law": ("alpha", "alpha_low", "alpha_high", "n_seeds", "seeds"),
}
#: Other estimates a table offers (`estimate:`) whose interval columns are not named
#: `<estimate>_low`, `<estimate>_high`: the ranking's tau minus the better baseline's.
OTHER_ESTIMATES: dict[str, dict[str, tuple[str, str]]] = {
    "ranking": {"vs_baseline": ("vs_ci_low", "vs_ci_high")},
}
#: Keys a claim has: required, then optional.
REQUIRED = ("id", "claim", "paper", "test", "expect", "threshold")
OPTIONAL = ("a", "b", "value", "table", "where", "for_each", "estimate")


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, as the statistic that checks it (see the module docstring)."""

    id: str
    claim: str  # the claim in words
    paper: str  # what the paper reports (figure, table, number)
    test: str
    expect: str
    threshold: float
    a: Mapping[str, Any] = field(default_factory=dict)  # paired: the arm under test
    b: Mapping[str, Any] | str = field(default_factory=dict)  # paired: what differs in the other
    value: str = "acc"
    table: str | None = None  # interval: the analysis table
    where: Mapping[str, Any] = field(default_factory=dict)  # interval: its row
    for_each: tuple[str, ...] = ()
    estimate: str | None = None  # interval: another column of the table (default: TABLES)

    def selections(self) -> list[Mapping[str, Any]]:
        """Every cell filter the claim names (for the check against the study's grid)."""
        if self.test == "interval":
            return [self.where]
        other = {} if self.b == SCRATCH else dict(self.b)
        return [self.a, {**self.a, **other}]

    def columns(self) -> tuple[str, str, str]:
        """An interval claim's estimate, low and high columns."""
        estimate, low, high, _, _ = TABLES[str(self.table)]
        if self.estimate:
            other = OTHER_ESTIMATES.get(str(self.table), {}).get(self.estimate)
            low, high = other or (f"{self.estimate}_low", f"{self.estimate}_high")
            return self.estimate, low, high
        return estimate, low, high


def _where(claim_id: str, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"claim {claim_id!r}: {key} must be a mapping of column: value")
    for column in value:
        if column not in CELL_COLUMNS:
            raise choice_error(f"column in claim {claim_id!r} ({key})", column, CELL_COLUMNS)
    return dict(value)


def _checked(raw: Mapping[str, Any], claim_id: str) -> dict[str, Any]:
    """The claim's fields, each checked; one-line ConfigErrors."""
    test, expect = raw["test"], raw["expect"]
    if test not in TESTS:
        raise choice_error(f"test of claim {claim_id!r}", test, TESTS)
    if expect not in EXPECTS:
        raise choice_error(f"expect of claim {claim_id!r}", expect, EXPECTS)
    try:
        threshold = float(raw["threshold"])
    except (TypeError, ValueError):
        threshold = math.nan
    if not math.isfinite(threshold):
        raise ConfigError(
            f"claim {claim_id!r}: threshold must be a finite number, got {raw['threshold']!r}"
        )
    fields: dict[str, Any] = {"test": test, "expect": expect, "threshold": threshold}
    for_each = raw.get("for_each") or ()
    if not isinstance(for_each, list | tuple):
        raise ConfigError(f"claim {claim_id!r}: for_each must be a list of columns")
    for column in for_each:
        if column not in CELL_COLUMNS:
            raise choice_error(f"for_each column of claim {claim_id!r}", column, CELL_COLUMNS)
    fields["for_each"] = tuple(for_each)
    if test == "paired":
        if not raw.get("a"):
            raise ConfigError(f"claim {claim_id!r}: a paired claim needs `a` (the arm)")
        b = raw.get("b")
        if b != SCRATCH and not isinstance(b, Mapping) or not b:
            raise ConfigError(f"claim {claim_id!r}: `b` must be {SCRATCH!r} or what differs")
        value = raw.get("value", "acc")
        if value not in VALUES:
            raise choice_error(f"value of claim {claim_id!r}", value, VALUES)
        if value == "gain" and b == SCRATCH:
            raise ConfigError(
                f"claim {claim_id!r}: value gain is already against scratch; `b` names what "
                "differs (e.g. {target_size: 20})"
            )
        fields |= {"a": _where(claim_id, "a", raw["a"]), "value": value}
        fields["b"] = b if b == SCRATCH else _where(claim_id, "b", b)
    else:
        if raw.get("table") not in TABLES:
            raise choice_error(f"table of claim {claim_id!r}", raw.get("table"), TABLES)
        fields |= {"table": raw["table"], "where": _where(claim_id, "where", raw.get("where"))}
        fields["estimate"] = raw.get("estimate")
    return fields


def parse_claim(raw: Any, index: int) -> Claim:
    """A claim from its YAML mapping; a one-line ConfigError for a malformed one."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"claim {index + 1} is not a mapping: {raw!r}")
    claim_id = str(raw.get("id", f"#{index + 1}"))
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ConfigError(f"claim {claim_id!r} lacks {', '.join(missing)}")
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise choice_error(f"key of claim {claim_id!r}", unknown[0], (*REQUIRED, *OPTIONAL))
    return Claim(
        id=claim_id, claim=str(raw["claim"]), paper=str(raw["paper"]), **_checked(raw, claim_id)
    )


def parse_claims(raw: Any) -> list[Claim]:
    """Every claim of a `claims:` list, ids unique; one-line ConfigErrors."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError("claims.yaml needs a non-empty list under `claims:`")
    claims = [parse_claim(item, i) for i, item in enumerate(raw)]
    ids = [c.id for c in claims]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ConfigError(f"claim id {repeated[0]!r} is used twice")
    return claims
