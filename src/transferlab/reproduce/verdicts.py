"""Claims checked on a study's analysis: each check's statistic, interval and verdict.

A verdict compares the interval with the threshold, on the side the paper puts it:
PASS where the whole interval lies there, FAIL where the whole interval lies on the other side,
INCONCLUSIVE where it covers the threshold (with the seeds it would take, if the estimate is on
the claimed side: the half-width shrinks as one over the square root of the seeds). A claim
checked at several levels (`for_each`) passes where every check passes and fails where any
check fails (an intersection-union test: no multiplicity correction is needed for PASS).
At smoke scale nothing is judged: the statistics are shown, the verdict is "smoke: not
checked".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from transferlab.analysis.keys import ARM, SCRATCH, SETTING
from transferlab.analysis.stats import CONFIDENCE, mean_ci
from transferlab.reproduce.claims import TABLES, Claim

PASS, FAIL, INCONCLUSIVE, SMOKE = "PASS", "FAIL", "INCONCLUSIVE", "smoke: not checked"
#: Fewest paired seeds an interval is computed from.
MIN_PAIRS = 2


@dataclass(frozen=True)
class Check:
    """One check of a claim: at one level of its `for_each` columns."""

    level: str  # e.g. "target_size=20" ("" without for_each)
    statistic: str  # what the estimate is, in words
    n: int  # paired seeds (or the table's sample size)
    estimate: float
    low: float
    high: float
    verdict: str
    note: str = ""
    unit: str = "paired seeds"  # what n counts


@dataclass(frozen=True)
class ClaimResult:
    """A claim and its checks; `verdict` combines them."""

    claim: Claim
    checks: list[Check] = field(default_factory=list)
    verdict: str = INCONCLUSIVE


#: Beyond this many seeds the note says "more than" (a gap near zero needs without bound).
MAX_SEEDS_NEEDED = 10_000


def seeds_needed(n: int, half: float, gap: float, confidence: float) -> int:
    """The fewest seeds m > n whose t interval would clear a threshold `gap` away from the
    estimate, if the estimate and its spread held: t_{m-1} s / sqrt(m) < gap, with s the
    spread an n-seed interval of half-width `half` implies (the t quantile shrinks with m too,
    so this is fewer than n (half / gap)^2)."""
    from scipy import stats

    q = 0.5 + confidence / 2
    spread = half * math.sqrt(n) / stats.t.ppf(q, n - 1)
    bound = (stats.norm.ppf(q) * spread / gap) ** 2  # t > z: a lower bound on m
    if bound > MAX_SEEDS_NEEDED:
        return MAX_SEEDS_NEEDED + 1
    m = max(n + 1, math.ceil(bound))
    while stats.t.ppf(q, m - 1) * spread / math.sqrt(m) >= gap:
        m += 1
    return m


def verdict(check: Check, claim: Claim, confidence: float = CONFIDENCE) -> tuple[str, str]:
    """The verdict of one interval against the claim's threshold, and a note on it."""
    estimate, low, high, n = check.estimate, check.low, check.high, check.n
    if not (np.isfinite(low) and np.isfinite(high)):
        return (
            INCONCLUSIVE,
            check.note or f"{n} {check.unit}: no interval (needs at least {MIN_PAIRS})",
        )
    above = claim.expect == "above"
    passed = low > claim.threshold if above else high < claim.threshold
    failed = high < claim.threshold if above else low > claim.threshold
    if passed or failed:
        return (PASS if passed else FAIL), ""
    gap = (estimate - claim.threshold) * (1 if above else -1)
    if gap <= 0:
        return INCONCLUSIVE, "the estimate is on the other side: more seeds would not pass it"
    if n < MIN_PAIRS:
        return INCONCLUSIVE, f"would need more {check.unit}"
    # the interval's reach on the threshold's side (a bootstrap interval need not be symmetric)
    reach = estimate - low if above else high - estimate
    needed = seeds_needed(n, reach, gap, confidence)
    if needed > MAX_SEEDS_NEEDED:
        return INCONCLUSIVE, f"would need more than {MAX_SEEDS_NEEDED} {check.unit}"
    return INCONCLUSIVE, f"would need about {needed} {check.unit}"


def matching(df: pd.DataFrame, where: Mapping[str, Any]) -> pd.Series:
    """Rows of `df` whose columns hold the given values (numbers compared as numbers)."""
    keep = pd.Series(True, index=df.index)
    for column, value in where.items():
        if column not in df.columns:
            return pd.Series(False, index=df.index)
        col = df[column]
        if value is None:
            keep &= col.isna()
        elif isinstance(value, bool) or not isinstance(value, int | float):
            keep &= col.astype(str).eq(str(value))
        else:
            keep &= pd.to_numeric(col, errors="coerce").eq(float(value))
    return keep


def _levels(rows: pd.DataFrame, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    if not columns:
        return [{}]
    if any(c not in rows.columns for c in columns):
        return [{}]
    present = rows[list(columns)].drop_duplicates().sort_values(list(columns))
    return [
        {
            c: None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)
            for c, v in zip(columns, row)
        }
        for row in present.itertuples(index=False)
    ]


def _label(level: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in level.items())


def _per_seed(runs: pd.DataFrame, value: str, label: str) -> tuple[pd.Series | None, str]:
    """One arm's per-seed values; None with a reason when the filter is not one arm."""
    arms = runs[ARM].drop_duplicates()
    if len(arms) != 1:
        return None, f"{label} matches {len(arms)} arms, not one"
    return runs.groupby("seed")[value].first(), ""


def _paired_check(claim: Claim, tables: Mapping[str, Any], level: dict, conf: float) -> Check:
    gain = claim.value == "gain"
    pairs = tables["pairs"]
    table = (
        pairs.assign(_value=pairs["ft_test_acc"] - pairs["scratch_test_acc"])
        if gain
        else tables["selected"].assign(_value=lambda d: d["test_acc"])
    )
    a_where = {**claim.a, **level}
    a_runs = table[matching(table, a_where)]
    if claim.b == SCRATCH:
        settings = a_runs[SETTING].drop_duplicates()
        b_runs = table[table["source"].eq(SCRATCH)].merge(settings, on=SETTING)
        b_text = "scratch"
    else:
        b_runs = table[matching(table, {**a_where, **claim.b})]
        b_text = _label(claim.b)
    statistic = f"{claim.value}[{_label(claim.a)}] - {claim.value}[{b_text}]"
    a, why_a = _per_seed(a_runs, "_value", "a")
    b, why_b = _per_seed(b_runs, "_value", "b")
    if a is None or b is None:
        return _not_computable(level, statistic, why_a or why_b)
    d = (a - b).dropna()
    estimate, low, high = mean_ci(d.to_numpy(), conf)
    return Check(_label(level), statistic, len(d), estimate, low, high, "", "")


def _not_computable(level: Mapping[str, Any], statistic: str, why: str) -> Check:
    """A check whose statistic cannot be computed: INCONCLUSIVE, saying why."""
    return Check(_label(level), statistic, 0, np.nan, np.nan, np.nan, INCONCLUSIVE, why)


def _interval_check(claim: Claim, tables: Mapping[str, Any], level: dict) -> Check:
    estimate_col, low_col, high_col = claim.columns()
    statistic = f"{claim.table}.{estimate_col}[{_label(claim.where)}]"
    table = tables.get(claim.table)
    if not isinstance(table, pd.DataFrame) or table.empty:
        return _not_computable(level, statistic, f"the analysis has no {claim.table} table")
    rows = table[matching(table, {**claim.where, **level})]
    if len(rows) != 1:
        return _not_computable(
            level, statistic, f"{len(rows)} rows of {claim.table} match, not one"
        )
    row = rows.iloc[0]
    *_, size, unit = TABLES[str(claim.table)]
    n = int(row[size]) if size in row.index and pd.notna(row[size]) else 0
    values = [float(row[c]) for c in (estimate_col, low_col, high_col)]
    why = row["note"] if "note" in row.index and isinstance(row["note"], str) else ""
    return Check(_label(level), statistic, n, *values, "", why, unit)


#: The tables' key of every target record with the arm labels claims name (`_labelled_runs`).
LABELLED_RUNS = "labelled_runs"


def _labelled_runs(tables: Mapping[str, Any]) -> pd.DataFrame:
    """Every target record (failed runs too) with its arm labels (source_variant, ...), or the
    selected runs where the records are not at hand."""
    if tables.get("records") is None:
        return tables["selected"]
    from transferlab.analysis.cells import target_runs  # the notebook needs it not

    return target_runs(tables["records"])


def check_claim(
    claim: Claim, tables: Mapping[str, Any], smoke: bool, confidence: float = CONFIDENCE
) -> ClaimResult:
    """Every check of a claim on the analysis' tables, and the claim's verdict."""
    # a paired claim's levels come from every record (failed runs too): a level whose runs all
    # failed is checked, and cannot pass, instead of silently dropping out of "every level"
    if claim.test == "paired":
        source = tables.get(LABELLED_RUNS)
        if source is None and claim.for_each:
            source = _labelled_runs(tables)
    else:
        source = tables.get(claim.table)
    rows = pd.DataFrame() if source is None else source
    anchor = claim.a if claim.test == "paired" else claim.where
    if claim.for_each and not rows.empty:
        rows = rows[matching(rows, anchor)]
    levels = _levels(rows, claim.for_each) if not rows.empty else [{}]
    checks = []
    for level in levels or [{}]:
        check = (
            _paired_check(claim, tables, level, confidence)
            if claim.test == "paired"
            else _interval_check(claim, tables, level)
        )
        if not check.verdict:
            judged, note = verdict(check, claim, confidence)
            check = Check(**{**check.__dict__, "verdict": judged, "note": note})
        if smoke:
            check = Check(**{**check.__dict__, "verdict": SMOKE, "note": ""})
        checks.append(check)
    return ClaimResult(claim, checks, _combined([c.verdict for c in checks], smoke))


def _combined(verdicts: list[str], smoke: bool) -> str:
    if smoke:
        return SMOKE
    if FAIL in verdicts:
        return FAIL
    return PASS if verdicts and all(v == PASS for v in verdicts) else INCONCLUSIVE


def check_claims(
    claims: list[Claim], tables: Mapping[str, Any], smoke: bool, confidence: float = CONFIDENCE
) -> list[ClaimResult]:
    """Every claim checked on one study's analysis tables (the records labelled once)."""
    if any(c.test == "paired" and c.for_each for c in claims):
        tables = {**tables, LABELLED_RUNS: _labelled_runs(tables)}
    return [check_claim(c, tables, smoke, confidence) for c in claims]
