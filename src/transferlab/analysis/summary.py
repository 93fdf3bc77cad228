"""Study-level summaries per source (Agarwal et al. 2021): the interquartile mean of the paired
gains over all cells and seeds, and the probability that fine-tuning beats scratch, each with a
stratified bootstrap interval (seeds resampled within cells).
"""

from __future__ import annotations

import pandas as pd

from transferlab.analysis.stats import (
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    probability_of_improvement,
    stratified_iqm,
)

SOURCE = ["study", "model", "source"]


def source_summaries(pairs: pd.DataFrame, cells: pd.DataFrame, *,
                     confidence: float = CONFIDENCE,
                     n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """One row per (study, model, source): IQM gain and P(fine-tuned > scratch) with intervals,
    and how many of its cells were flagged positive or negative."""
    pairs = pairs.assign(gain=pairs["ft_test_acc"] - pairs["scratch_test_acc"])
    cell_keys = [c for c in cells.columns if c in ("target", "target_size", "freeze_depth")]
    rows = []
    for key, group in pairs.groupby(SOURCE, dropna=False, sort=True):
        by_cell = [g for _, g in group.groupby(cell_keys, dropna=False, sort=True)]
        est, lo, hi = stratified_iqm([g["gain"].to_numpy() for g in by_cell],
                                     confidence=confidence, n_resamples=n_resamples, seed=seed)
        poi, poi_lo, poi_hi = probability_of_improvement(
            [g["ft_test_acc"].to_numpy() for g in by_cell],
            [g["scratch_test_acc"].to_numpy() for g in by_cell],
            confidence=confidence, n_resamples=n_resamples, seed=seed)
        mine = cells[(cells[SOURCE] == pd.Series(key, index=SOURCE)).all(axis=1)]
        rows.append({**dict(zip(SOURCE, key)),
                     "cells": len(mine), "cells_tested": int((mine["n_pairs"] >= 2).sum()),
                     "runs": len(group), "iqm_gain": est, "iqm_low": lo, "iqm_high": hi,
                     "p_improve": poi, "p_improve_low": poi_lo, "p_improve_high": poi_hi,
                     "positive": int(mine["flag"].eq("positive").sum()),
                     "negative": int(mine["flag"].eq("negative").sum())})
    cols = [*SOURCE, "cells", "cells_tested", "runs", "iqm_gain", "iqm_low", "iqm_high",
            "p_improve", "p_improve_low", "p_improve_high", "positive", "negative"]
    return pd.DataFrame(rows, columns=cols)
