"""How shift and transferability scores relate to the realised transfer: rank correlations of
each distance with the pair gain, and rank agreement of each estimator with the fine-tuned
accuracy across sources (Kendall tau, weighted tau, bootstrap intervals).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from transferlab.analysis.estimators import BASELINES, ESTIMATORS
from transferlab.analysis.keys import PAIR, SCRATCH
from transferlab.analysis.shift import SHIFT_MEASURES
from transferlab.analysis.stats import CORRELATION_KEYS, MIN_RANK_PAIRS, rank_correlations

#: Method labels of plain fine-tuning ("" in tables made without a method column's values).
PLAIN_METHODS = ("finetune", "")
#: Columns of a rank-relation table (shift against gain; estimators share the tail).
CORRELATION_COLUMNS = ["study", "model", "space", "distance", "n", *CORRELATION_KEYS, "note"]


def full_finetuning(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain fine-tuning rows (method `finetune`) at each source's smallest freeze depth
    (0 = full fine-tuning): the transfer the shift is related to, whatever other methods ran."""
    frame = frame[~frame["source"].eq(SCRATCH)]
    if "method" in frame.columns:
        frame = frame[frame["method"].isin(PLAIN_METHODS)]
    lowest = frame.groupby(PAIR, dropna=False)["freeze_depth"].transform("min")
    return frame[frame["freeze_depth"].eq(lowest)]


def pair_gains(cells: pd.DataFrame) -> pd.DataFrame:
    """Gain of each (source, target) pair: the mean gain of its full fine-tuning cells over
    target sizes."""
    gains = full_finetuning(cells).groupby(PAIR, dropna=False)["gain"].mean()
    return gains.rename("gain").reset_index()


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


def shift_vs_gain(shift: pd.DataFrame, cells: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    """Rank correlation of each distance with the pair gain (see `pair_gains`) across
    (source, target) pairs, per model and space."""
    ok = shift[shift["status"].eq("ok")]
    if ok.empty or cells.empty:
        return pd.DataFrame(columns=CORRELATION_COLUMNS)
    table = ok.merge(pair_gains(cells), on=PAIR, how="inner")
    rows = _correlate(
        table,
        ["study", "model", "space"],
        SHIFT_MEASURES,
        "distance",
        "gain",
        f"fewer than {MIN_RANK_PAIRS} (source, target) pairs",
        **kwargs,
    )
    return pd.DataFrame(rows).reindex(columns=CORRELATION_COLUMNS)


def estimator_agreement(
    estimators: pd.DataFrame, curves: pd.DataFrame, **kwargs: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores joined with the realised fine-tuned test accuracy (full fine-tuning, per target
    size and variant), and Kendall/weighted tau between each score and that accuracy across
    sources: each source counts once in a correlation, whatever else the study swept."""
    ok = estimators[estimators["status"].eq("ok")]
    # one row per source in each correlation: every setting but the source keys it
    variants = [c for c in ("variant", "source_variant") if c in curves.columns]
    keys = ["study", "model", "target", "target_size", *variants]
    columns = [*keys, "estimator", *CORRELATION_COLUMNS[4:]]
    if ok.empty or curves.empty:
        return (
            pd.DataFrame(columns=[*ok.columns, "target_size", "finetuned_acc"]),
            pd.DataFrame(columns=columns),
        )
    realised = full_finetuning(curves)[
        [*PAIR, *variants, "target_size", "freeze_depth", "test_acc"]
    ]
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
    return joined, pd.DataFrame(rows).reindex(columns=columns)
