"""Study-level intervals that resample *seeds*, not runs (a cluster bootstrap).

The cells of one source share, per seed, the source checkpoint, the target subset and (at one
target setting) the scratch run their fine-tuned arms are paired with. Their gains are therefore
correlated across cells through the seed, and resampling each cell's seeds independently (the
stratified bootstrap of Agarwal et al. 2021) treats them as independent and gives intervals that
are too narrow. Here each resample draws seeds with replacement once and every cell takes the
runs of the drawn seeds, so what runs share is resampled together.

The clusters are few (a study has ~5-20 seeds), and a percentile bootstrap over n clusters is
too narrow by about sqrt((n - 1) / n) and uses normal rather than t tails. The interval is the
*expanded* percentile interval (Hesterberg 2015, "What teachers should know about the
bootstrap"): percentiles at the tail where a normal reaches sqrt(n / (n - 1)) t_{n-1}.

Values come as a matrix: one row per cell, one column per seed, NaN where a cell has no pair of
that seed (a failed or unselected run).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from transferlab.analysis.stats import (
    BOOTSTRAP_BATCH,
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    IQM_TRIM,
)

#: Fewest pairs a cell needs to count in a study-level summary (one pair has no spread).
MIN_CELL_PAIRS = 2


def expanded_tail(confidence: float, n_clusters: int) -> float:
    """The lower percentile (0-1) of the expanded percentile interval over `n_clusters`."""
    t = stats.t.ppf(0.5 + confidence / 2, n_clusters - 1)
    return float(stats.norm.cdf(-np.sqrt(n_clusters / (n_clusters - 1)) * t))


def expanded_interval(
    draws: np.ndarray, confidence: float, n_clusters: int, *, failed_as_worst: bool = False
) -> tuple[float, float]:
    """The expanded percentile interval of bootstrap `draws` over `n_clusters` seeds; NaN with
    fewer than two clusters. NaN draws (resamples without a statistic) are left out, or with
    `failed_as_worst` count as the worst case on each side (-inf for the low bound, +inf for
    the high): a bound is then finite only when such draws are rarer than its tail, so leaving
    them out could not have moved it."""
    if n_clusters < 2:
        return np.nan, np.nan
    tail = expanded_tail(confidence, n_clusters)
    if failed_as_worst:
        failed = ~np.isfinite(draws)
        lo = np.quantile(np.where(failed, -np.inf, draws), tail, method="lower")
        hi = np.quantile(np.where(failed, np.inf, draws), 1 - tail, method="higher")
        lo, hi = (float(b) if np.isfinite(b) else np.nan for b in (lo, hi))
        return lo, hi
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return np.nan, np.nan
    lo, hi = np.quantile(draws, [tail, 1 - tail])
    return float(lo), float(hi)


def nan_iqm(values: np.ndarray) -> np.ndarray:
    """Interquartile mean of each row's finite values (scipy's `trim_mean` cut: the
    int(0.25 n) smallest and largest left out); NaN for a row without finite values."""
    ordered = np.sort(values, axis=-1)  # NaN sort last
    n = np.isfinite(ordered).sum(axis=-1)
    cut = (IQM_TRIM * n).astype(np.int64)
    sums = np.concatenate(
        [np.zeros((*ordered.shape[:-1], 1)), np.cumsum(np.nan_to_num(ordered), axis=-1)], axis=-1
    )
    upper = np.take_along_axis(sums, (n - cut)[..., None], axis=-1)[..., 0]
    lower = np.take_along_axis(sums, cut[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (upper - lower) / (n - 2 * cut)


def _usable(*matrices: np.ndarray) -> np.ndarray:
    """Cells (rows) with at least MIN_CELL_PAIRS seeds finite in every matrix."""
    finite = np.logical_and.reduce([np.isfinite(m) for m in matrices])
    return finite.sum(axis=1) >= MIN_CELL_PAIRS


def _seeds_present(values: np.ndarray) -> np.ndarray:
    """Without the seed columns no kept cell has (a seed only in dropped cells is no cluster)."""
    return values[:, np.isfinite(values).any(axis=0)] if values.size else values


def _seed_draws(rng: np.random.Generator, batch: int, n_seeds: int) -> np.ndarray:
    return rng.integers(0, n_seeds, size=(batch, n_seeds))


def seed_bootstrap_iqm(
    gains: np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """IQM of all pairs of all cells (rows of `gains`, seeds in columns), with an expanded
    percentile interval from resampling seeds jointly across cells."""
    gains = np.asarray(gains, dtype=float)
    gains = _seeds_present(gains[_usable(gains)])
    if gains.size == 0:
        return np.nan, np.nan, np.nan
    estimate = float(nan_iqm(gains.ravel()))
    n_seeds = gains.shape[1]
    rng = np.random.default_rng(seed)
    draws = []
    for first in range(0, n_resamples, BOOTSTRAP_BATCH):
        idx = _seed_draws(rng, min(BOOTSTRAP_BATCH, n_resamples - first), n_seeds)
        draws.append(_pooled_iqm(gains, seed_counts(idx, n_seeds)))
    return (estimate, *expanded_interval(np.concatenate(draws), confidence, n_seeds))


def seed_counts(idx: np.ndarray, n_seeds: int) -> np.ndarray:
    """How often each resample (row of `idx`) drew each seed: (resamples, seeds)."""
    counts = np.zeros((len(idx), n_seeds), dtype=np.int64)
    np.add.at(counts, (np.arange(len(idx))[:, None], idx), 1)
    return counts


def _pooled_iqm(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`nan_iqm` of each resample's pool, in which every cell's value of seed j appears
    counts[r, j] times, without building and sorting the pools: the finite values are sorted
    once with each seed's running counts and sums along that order, and a pool's k smallest
    values are read off them (equal to the pooled IQM up to rounding)."""
    cell, seed = np.nonzero(np.isfinite(values))
    order = np.argsort(values[cell, seed], kind="stable")
    ordered, seed = values[cell, seed][order], seed[order]
    of_seed = np.zeros((counts.shape[1], ordered.size))
    of_seed[seed, np.arange(ordered.size)] = 1.0  # the seed each sorted value belongs to
    seed_count = np.cumsum(np.c_[np.zeros(len(of_seed)), of_seed], axis=1)  # (seeds, values+1)
    seed_sum = np.cumsum(np.c_[np.zeros(len(of_seed)), of_seed * ordered], axis=1)
    weights = counts.astype(float)
    covered = weights @ seed_count  # pool positions the first k sorted values fill (exact)
    n = covered[:, -1]
    cut = (IQM_TRIM * n).astype(np.int64)
    rows, next_value = np.arange(len(counts)), np.r_[ordered, 0.0]

    def smallest(p: np.ndarray) -> np.ndarray:
        """Sum of each pool's p smallest values."""
        taken = (covered <= p[:, None]).sum(axis=1) - 1  # sorted values all of whose copies
        summed = np.einsum("rj,jr->r", weights, seed_sum[:, taken])  # are among them
        return summed + (p - covered[rows, taken]) * next_value[taken]  # and part of the next

    with np.errstate(invalid="ignore", divide="ignore"):
        return (smallest(n - cut) - smallest(cut)) / (n - 2 * cut)


def _beats(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per cell, 1 where x_i > y_j, 1/2 where equal, 0 otherwise or where either is missing."""
    out = (x[:, :, None] > y[:, None, :]) + 0.5 * (x[:, :, None] == y[:, None, :])
    return out * (np.isfinite(x)[:, :, None] & np.isfinite(y)[:, None, :])


def seed_bootstrap_improvement(
    finetuned: np.ndarray,
    scratch: np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """P(a fine-tuned run beats a scratch run of its cell) + P(tie)/2, averaged over cells (the
    Mann-Whitney form of Agarwal et al. 2021), with an expanded percentile interval from
    resampling seeds jointly across cells and arms.

    A resample is a vector of seed counts c, so a cell's statistic is
    (c*mx)^T B (c*my) / ((c.mx)(c.my)) with B its fixed comparison matrix and mx, my the seeds
    each arm has.
    """
    x, y = np.asarray(finetuned, dtype=float), np.asarray(scratch, dtype=float)
    keep = np.isfinite(x).sum(axis=1) >= MIN_CELL_PAIRS
    keep &= np.isfinite(y).sum(axis=1) >= MIN_CELL_PAIRS
    x, y = x[keep], y[keep]
    present = (np.isfinite(x) | np.isfinite(y)).any(axis=0)  # seeds only dropped cells had
    x, y = x[:, present], y[:, present]
    if not len(x):
        return np.nan, np.nan, np.nan
    beats = _beats(x, y)
    has_x, has_y = np.isfinite(x).astype(float), np.isfinite(y).astype(float)
    estimate = float(np.mean(beats.sum(axis=(1, 2)) / (has_x.sum(1) * has_y.sum(1))))
    n_seeds = x.shape[1]
    rng = np.random.default_rng(seed)
    draws = []
    for first in range(0, n_resamples, BOOTSTRAP_BATCH):
        idx = _seed_draws(rng, min(BOOTSTRAP_BATCH, n_resamples - first), n_seeds)
        counts = seed_counts(idx, n_seeds).astype(float)
        wins = np.einsum("bi,kij,bj->bk", counts, beats, counts, optimize=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_cell = wins / ((counts @ has_x.T) * (counts @ has_y.T))
        draws.append(_nan_mean_rows(per_cell))
    return (estimate, *expanded_interval(np.concatenate(draws), confidence, n_seeds))


def _nan_mean_rows(values: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, values, 0.0).sum(axis=1) / finite.sum(axis=1)
