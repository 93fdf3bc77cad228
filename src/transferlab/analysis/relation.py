"""How shift and transferability scores relate to the realised transfer: rank correlations of
each distance with the pair gain, and rank agreement of each estimator with the fine-tuned
accuracy across sources (Kendall tau, weighted tau, bootstrap intervals), per fine-tuning arm,
with p-values corrected across every arm, space, distance and estimator of a study.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from transferlab.analysis.estimators import BASELINES, ESTIMATORS
from transferlab.analysis.keys import PAIR, SCRATCH
from transferlab.analysis.shift import SHIFT_MEASURES
from transferlab.analysis.stats import (
    CORRELATION_KEYS,
    MIN_RANK_PAIRS,
    PERMUTATIONS,
    adjust_pvalues,
    rank_correlations,
)

#: Method labels of plain fine-tuning ("" in tables made without a method column's values).
PLAIN_METHODS = ("finetune", "")
#: What a relation is computed per: the fine-tuning arm (method with its settings, freeze
#: depth) and the settings both arms share or the source stage used. Full fine-tuning can wash
#: a source out while frozen arms of the same study show the shift plainly, so each arm gets
#: its own correlation and the p-values are corrected across all of them.
RELATION_ARM = ["method", "freeze_depth", "variant", "source_variant"]
#: Columns of a rank-relation table (shift against gain; estimators share the tail).
CORRELATION_TAIL = ["n", *CORRELATION_KEYS, "spearman_q", "kendall_q", "note"]
CORRELATION_COLUMNS = [
    "study",
    "model",
    "arm",
    *RELATION_ARM,
    "space",
    "distance",
    *CORRELATION_TAIL,
]


def arm_columns(frame: pd.DataFrame) -> list[str]:
    """The RELATION_ARM columns `frame` has."""
    return [c for c in RELATION_ARM if c in frame.columns]


def arm_label(method: object, freeze_depth: object) -> str:
    """How an arm is named in tables and findings: `finetune at freeze depth 2`, `lp_ft`."""
    name = "" if pd.isna(method) else str(method)
    if name in PLAIN_METHODS:
        return f"finetune at freeze depth {int(freeze_depth)}"
    return name if int(freeze_depth) == 0 else f"{name} at freeze depth {int(freeze_depth)}"


def transferred(frame: pd.DataFrame) -> pd.DataFrame:
    """The fine-tuned rows (every arm but scratch), with the `arm` label."""
    frame = frame[~frame["source"].eq(SCRATCH)]
    method = frame["method"] if "method" in frame.columns else pd.Series("", index=frame.index)
    labels = [arm_label(m, d) for m, d in zip(method, frame["freeze_depth"])]
    return frame.assign(arm=pd.Series(labels, index=frame.index, dtype=object))


#: The arm of plain full fine-tuning (nothing frozen), named as `arm_label` names it.
FULL_FINETUNING = arm_label("finetune", 0)


def pair_gains(cells: pd.DataFrame) -> pd.DataFrame:
    """Gain of each (source, target) pair per arm: the mean gain of its cells over target
    sizes."""
    keys = [*PAIR, "arm", *arm_columns(cells)]
    gains = transferred(cells).groupby(keys, dropna=False)["gain"].mean()
    return gains.rename("gain").reset_index()


def with_q(table: pd.DataFrame, correction: str) -> pd.DataFrame:
    """`spearman_q` and `kendall_q`: each p adjusted across every correlation of its study (all
    arms, spaces, distances or estimators), so picking the clearest one costs what it should."""
    table = table.copy()
    for name in ("spearman", "kendall"):
        table[f"{name}_q"] = np.nan
        for _, rows in table.groupby("study", sort=False):
            table.loc[rows.index, f"{name}_q"] = adjust_pvalues(
                rows[f"{name}_p"].to_numpy(float), correction
            )
    return table


def _correlate(
    table: pd.DataFrame,
    keys: list[str],
    scores: tuple[str, ...],
    label: str,
    against: str,
    note: str,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """One row per group of ``keys`` and score column: the rank correlation of the score with
    ``against`` across the group's rows; below MIN_RANK_PAIRS rows with both, no number and
    "not testable" with ``note`` instead."""
    rows = []
    for key, group in table.groupby(keys, dropna=False, sort=True):
        for name in scores:
            stats = rank_correlations(group[name], group[against], **kwargs)
            rows.append(
                {
                    **dict(zip(keys, key)),
                    label: name,
                    **stats,
                    "note": "" if stats["n"] >= MIN_RANK_PAIRS else f"not testable: {note}",
                }
            )
    return rows


def shift_vs_gain(
    shift: pd.DataFrame, cells: pd.DataFrame, *, correction: str = "bh", **kwargs: Any
) -> pd.DataFrame:
    """Rank correlation of each distance with the pair gain (see `pair_gains`) across
    (source, target) pairs, per model, arm and space; q corrected across them all."""
    ok = shift[shift["status"].eq("ok")]
    if ok.empty or cells.empty:
        return pd.DataFrame(columns=CORRELATION_COLUMNS)
    gains = pair_gains(cells)
    table = ok.merge(gains, on=PAIR, how="inner")
    rows = _correlate(
        table,
        ["study", "model", "arm", *arm_columns(gains), "space"],
        SHIFT_MEASURES,
        "distance",
        "gain",
        f"fewer than {MIN_RANK_PAIRS} (source, target) pairs",
        **kwargs,
    )
    out = pd.DataFrame(rows).reindex(columns=CORRELATION_COLUMNS)
    return with_q(out, correction)


def estimator_agreement(
    estimators: pd.DataFrame, curves: pd.DataFrame, *, correction: str = "bh", **kwargs: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores joined with the realised fine-tuned test accuracy (per arm, target size and
    variant), and Kendall/weighted tau between each score and that accuracy across sources:
    each source counts once in a correlation, whatever else the study swept; q corrected across
    every correlation of a study."""
    ok = estimators[estimators["status"].eq("ok")]
    arms = arm_columns(curves)
    keys = ["study", "model", "target", "target_size", "arm", *arms]
    columns = [*keys, "estimator", *CORRELATION_TAIL]
    if ok.empty or curves.empty:
        return (
            pd.DataFrame(columns=[*ok.columns, "target_size", "arm", "finetuned_acc"]),
            pd.DataFrame(columns=columns),
        )
    realised = transferred(curves)[[*PAIR, "arm", *arms, "target_size", "test_acc"]]
    joined = ok.merge(realised, on=PAIR, how="inner")
    joined = joined.rename(columns={"test_acc": "finetuned_acc"})
    rows = _correlate(
        joined,
        keys,
        (*ESTIMATORS, *BASELINES),
        "estimator",
        "finetuned_acc",
        f"fewer than {MIN_RANK_PAIRS} sources with a score",
        **kwargs,
    )
    return joined, with_q(pd.DataFrame(rows).reindex(columns=columns), correction)


def permutation_kind(n: int) -> str:
    """How a rank correlation's p over `n` pairs was computed (see `stats.permutation_p`)."""
    if math.factorial(n) <= PERMUTATIONS:
        return "exact permutation p"
    return f"permutation p from {PERMUTATIONS} random pairings"


def clearest(table: pd.DataFrame, statistic: str) -> pd.Series | None:
    """The tested row with the smallest q of `statistic` (ties: the larger |statistic|), or
    None when no row could be tested."""
    tested = table.dropna(subset=[statistic, f"{statistic}_q"]) if len(table) else table
    if tested.empty:
        return None
    order = tested.assign(_strength=-tested[statistic].abs())
    return order.sort_values([f"{statistic}_q", "_strength"], kind="stable").iloc[0]


def family_size(table: pd.DataFrame, row: pd.Series, statistic: str) -> int:
    """How many correlations `row`'s q was corrected across (those of its study, see `with_q`)."""
    return int(table.loc[table["study"].eq(row["study"]), f"{statistic}_q"].notna().sum())


def _arm_name(row: pd.Series) -> str:
    """The arm with the variants that tell it apart (settings both arms share, source stage)."""
    extra = [str(row[c]) for c in ("variant", "source_variant") if c in row and _shown(row[c])]
    return row["arm"] + (f" ({'; '.join(extra)})" if extra else "")


def _shown(value: object) -> bool:
    return not (value is None or (isinstance(value, float) and np.isnan(value)) or value == "")


def describe(row: pd.Series, statistic: str, label: str, family: int, correction: str) -> str:
    """One correlation in words: the arm, what was related, the statistic, its p (and how it
    was computed), its q across the `family` correlations and the number of pairs."""
    if "distance" in row:
        what = f"{row['distance']} in {row['space']} space"
    else:
        size = "all" if pd.isna(row["target_size"]) else int(row["target_size"])
        what = f"{row['estimator']} on {row['target']} at {size} examples"
    return (
        f"{what}, {_arm_name(row)}: {label} {row[statistic]:+.2f} "
        f"({permutation_kind(int(row['n']))} = {row[f'{statistic}_p']:.3g}, "
        f"q = {row[f'{statistic}_q']:.3g} after {correction} across {family} correlations; "
        f"{int(row['n'])} pairs)"
    )
