"""Study-level summaries per source (Agarwal et al. 2021): the interquartile mean of the paired
gains over all cells and seeds, and the probability that fine-tuning beats scratch, each with a
stratified bootstrap interval (seeds resampled within cells).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from transferlab.analysis.keys import ARM
from transferlab.analysis.keys import SOURCE_SUMMARY as SOURCE
from transferlab.analysis.stats import (
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    probability_of_improvement,
    stratified_iqm,
)

#: Columns of the per-source summary.
SUMMARY_COLUMNS = [
    *SOURCE,
    "cells",
    "cells_tested",
    "runs",
    "iqm_gain",
    "iqm_low",
    "iqm_high",
    "p_improve",
    "p_improve_low",
    "p_improve_high",
    "positive",
    "negative",
]


def _source_row(group: pd.DataFrame, intervals: dict[str, Any]) -> dict[str, Any]:
    """IQM gain and P(fine-tuned > scratch), with intervals, of one source's pairs."""
    bounds = np.flatnonzero(np.diff(group["_cell"].to_numpy())) + 1

    def split(column: str) -> list:
        return np.split(group[column].to_numpy(float), bounds)

    est, lo, hi = stratified_iqm(split("gain"), **intervals)
    poi, poi_lo, poi_hi = probability_of_improvement(
        split("ft_test_acc"), split("scratch_test_acc"), **intervals
    )
    return {
        "runs": len(group),
        "iqm_gain": est,
        "iqm_low": lo,
        "iqm_high": hi,
        "p_improve": poi,
        "p_improve_low": poi_lo,
        "p_improve_high": poi_hi,
    }


def source_summaries(
    pairs: pd.DataFrame,
    cells: pd.DataFrame,
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (study, model, source): IQM gain and P(fine-tuned > scratch) with intervals,
    and how many of its cells were flagged positive or negative."""
    # every cell dimension (variants too): a fine-tuned run meets only its own cell's baseline
    cell_keys = [c for c in ARM if c in pairs.columns]
    pairs = pairs.assign(
        gain=pairs["ft_test_acc"] - pairs["scratch_test_acc"],
        _cell=pairs.groupby(cell_keys, dropna=False).ngroup(),
    )
    pairs = pairs.sort_values([*SOURCE, "_cell"], kind="stable")
    flags = cells.groupby(SOURCE, dropna=False).agg(
        cells=("flag", "size"),
        cells_tested=("n_pairs", lambda n: int((n >= 2).sum())),
        positive=("flag", lambda f: int(f.eq("positive").sum())),
        negative=("flag", lambda f: int(f.eq("negative").sum())),
    )
    intervals = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}

    def summarise(item: tuple[Any, pd.DataFrame]) -> dict[str, Any]:
        key, group = item
        counts = flags.loc[key] if key in flags.index else pd.Series(0, index=flags.columns)
        return {**dict(zip(SOURCE, key)), **counts.to_dict(), **_source_row(group, intervals)}

    # Sources are independent (each bootstrap has its own generator): numpy's sorting and
    # counting release the GIL, so threads use every core.
    groups = list(pairs.groupby(SOURCE, dropna=False, sort=True))
    with ThreadPoolExecutor(max_workers=min(len(groups), os.cpu_count() or 1) or 1) as pool:
        rows = list(pool.map(summarise, groups))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
