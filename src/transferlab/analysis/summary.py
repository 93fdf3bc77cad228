"""Study-level summaries per source (Agarwal et al. 2021): the interquartile mean of the paired
gains over all cells and seeds, and the probability that fine-tuning beats scratch, each with an
interval from resampling seeds jointly across the source's cells (they share each seed's source
checkpoint, target subset and scratch run; see `seed_bootstrap`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from transferlab.analysis.keys import ARM
from transferlab.analysis.keys import SOURCE_SUMMARY as SOURCE
from transferlab.analysis.seed_bootstrap import seed_bootstrap_improvement, seed_bootstrap_iqm
from transferlab.analysis.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE

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
    # cells in rows, the source's seeds in columns (one grid for all three: the same seed in
    # the same column), NaN where a cell lacks that seed
    grid = group.pivot(
        index="_cell", columns="seed", values=["gain", "ft_test_acc", "scratch_test_acc"]
    )

    def by_seed(column: str) -> np.ndarray:
        return grid[column].to_numpy(float)

    est, lo, hi = seed_bootstrap_iqm(by_seed("gain"), **intervals)
    poi, poi_lo, poi_hi = seed_bootstrap_improvement(
        by_seed("ft_test_acc"), by_seed("scratch_test_acc"), **intervals
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
