"""Statistics: intervals, multiple-comparison control, IQM and probability
of improvement with stratified bootstrap intervals (Agarwal et al. 2021), rank agreement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

#: Confidence level of every interval.
CONFIDENCE = 0.95
#: Bootstrap resamples for intervals.
BOOTSTRAP_RESAMPLES = 2000
#: Share trimmed from each end for the interquartile mean.
IQM_TRIM = 0.25
CORRECTIONS = ("bh", "holm")


def mean_ci(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean with a t-interval; the bounds are NaN for fewer than two values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.nan, np.nan, np.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return mean, float(mean - half), float(mean + half)


def grouped_mean_ci(
    grouped: pd.core.groupby.SeriesGroupBy, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """`mean_ci` per group, vectorised: columns mean, ci_low, ci_high, count (finite values)."""
    agg = grouped.agg(["mean", "std", "count"])
    with np.errstate(invalid="ignore"):
        half = (
            stats.t.ppf(0.5 + confidence / 2, agg["count"] - 1) * agg["std"] / np.sqrt(agg["count"])
        )
    half = half.where(agg["count"] >= 2)
    return pd.DataFrame(
        {
            "mean": agg["mean"],
            "ci_low": agg["mean"] - half,
            "ci_high": agg["mean"] + half,
            "count": agg["count"],
        }
    )


def holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control)."""
    p = np.asarray(p, dtype=float)
    m = p.size
    order = np.argsort(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def adjust_pvalues(p: Sequence[float], method: str = "bh") -> np.ndarray:
    """Adjusted p-values (q) across a family; NaN entries stay NaN and are not counted.

    ``bh``: Benjamini-Hochberg (false discovery rate); ``holm``: Holm (family-wise error).
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; valid choices: {', '.join(CORRECTIONS)}")
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        if method == "bh":
            out[ok] = stats.false_discovery_control(p[ok], method="bh")
        else:
            out[ok] = holm(p[ok])
    return out


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (robust to outlying cells and runs)."""
    return stats.trim_mean(values, IQM_TRIM, axis=axis)


#: Bootstrap resamples drawn per batch (bounds memory for large studies).
BOOTSTRAP_BATCH = 250


def _percentile(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def stratified_iqm(
    groups: Sequence[np.ndarray],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """IQM over all runs of all groups (cells), with a percentile interval from a stratified
    bootstrap (runs resampled within each group, as in Agarwal et al. 2021).

    Vectorised over all groups at once: scipy.stats.bootstrap resamples each of hundreds of
    strata in a Python loop, which takes seconds per source in a large study.
    """
    groups = [np.asarray(g, dtype=float) for g in groups if len(g) >= 2]
    if not groups:
        return np.nan, np.nan, np.nan
    values = np.concatenate(groups)
    estimate = float(iqm(values))
    sizes = np.array([len(g) for g in groups])
    size_at = np.repeat(sizes, sizes)
    start_at = np.repeat(np.cumsum(sizes) - sizes, sizes)
    rng = np.random.default_rng(seed)
    stats_ = []
    for first in range(0, n_resamples, BOOTSTRAP_BATCH):
        batch = min(BOOTSTRAP_BATCH, n_resamples - first)
        idx = start_at + (rng.random((batch, values.size)) * size_at).astype(np.int64)
        stats_.append(iqm(values[idx], axis=1))
    lo, hi = _percentile(np.concatenate(stats_), confidence)
    return estimate, lo, hi


def _beats(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 where x_i > y_j, 1/2 where equal, else 0."""
    return (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])


def _resample_counts(rng: np.random.Generator, n_resamples: int, k: int, m: int) -> np.ndarray:
    """Bootstrap counts (n_resamples, k, m): how often each of m items is drawn in m draws,
    independently for k groups."""
    draws = rng.integers(0, m, size=(n_resamples * k, m))
    flat = (draws + m * np.arange(n_resamples * k)[:, None]).ravel()
    return np.bincount(flat, minlength=n_resamples * k * m).reshape(n_resamples, k, m)


def probability_of_improvement(
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """P(X > Y) + P(X = Y)/2 per group (the Mann-Whitney form), averaged over groups, with a
    stratified bootstrap interval (x and y resampled within each group).

    A resample is drawn as counts, so each group's statistic is counts_x^T B counts_y / (m n)
    with B the fixed comparison matrix (`_beats`); groups of equal sizes go together.
    """
    pairs = [
        (np.asarray(x, float), np.asarray(y, float))
        for x, y in zip(xs, ys)
        if len(x) >= 2 and len(y) >= 2
    ]
    if not pairs:
        return np.nan, np.nan, np.nan
    estimate = float(np.mean([_beats(x, y).mean() for x, y in pairs]))
    rng = np.random.default_rng(seed)
    total = np.zeros(n_resamples)
    by_shape: dict[tuple[int, int], list[np.ndarray]] = {}
    for x, y in pairs:
        by_shape.setdefault((len(x), len(y)), []).append(_beats(x, y))
    for (m, n), mats in by_shape.items():
        for first in range(0, len(mats), BOOTSTRAP_BATCH):
            beats = np.stack(mats[first : first + BOOTSTRAP_BATCH])
            cx = _resample_counts(rng, n_resamples, len(beats), m)
            cy = _resample_counts(rng, n_resamples, len(beats), n)
            total += np.einsum("bki,kij,bkj->b", cx, beats, cy, optimize=True) / (m * n)
    lo, hi = _percentile(total / len(pairs), confidence)
    return estimate, lo, hi


def _rows_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row pair (Pearson on average ranks)."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=1) / denom


def _rows_kendall(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row pair."""
    sx = np.sign(x[:, :, None] - x[:, None, :])
    sy = np.sign(y[:, :, None] - y[:, None, :])
    num = (sx * sy).sum(axis=(1, 2))
    denom = np.sqrt((sx != 0).sum(axis=(1, 2)) * (sy != 0).sum(axis=(1, 2)).astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / denom


ROW_STATISTICS = {"spearman": _rows_spearman, "kendall": _rows_kendall}


def paired_bootstrap_ci(
    x: np.ndarray,
    y: np.ndarray,
    statistic: str,
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a rank correlation over resampled (x, y) pairs.

    Resamples where the statistic is undefined (all ties) are left out, which scipy's bootstrap
    cannot do.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 3:
        return np.nan, np.nan
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_resamples, x.size))
    return _percentile(ROW_STATISTICS[statistic](x[idx], y[idx]), confidence)


#: What `rank_correlations` returns besides `n`.
CORRELATION_KEYS = (
    "spearman",
    "spearman_p",
    "spearman_low",
    "spearman_high",
    "kendall",
    "kendall_p",
    "kendall_low",
    "kendall_high",
    "weighted_tau",
)


#: Fewest pairs a rank correlation is reported for: with 4 an exact test cannot go below
#: p = 1/12 (Spearman), with 3 not below 1/3, so a number there would only mislead.
MIN_RANK_PAIRS = 5
#: Random pairings of the permutation test when n! is larger (exact enumeration below that).
PERMUTATIONS = 9999


def permutation_p(x: np.ndarray, y: np.ndarray, statistic: str, seed: int = 0) -> float:
    """Two-sided permutation p-value of a rank correlation: y re-paired with x in every way
    (exact up to n! <= PERMUTATIONS, else PERMUTATIONS random pairings), via scipy."""
    rows = ROW_STATISTICS[statistic]

    def stat(b: np.ndarray, axis: int = -1) -> np.ndarray:
        b = np.moveaxis(b, axis, -1)
        flat = b.reshape(-1, b.shape[-1])
        return rows(np.broadcast_to(x, flat.shape), flat).reshape(b.shape[:-1])

    # One sample re-ordered against fixed x: n! pairings (two samples would count n!**2).
    result = stats.permutation_test(
        (y,),
        stat,
        permutation_type="pairings",
        vectorized=True,
        n_resamples=PERMUTATIONS,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def rank_correlations(
    x: Sequence[float],
    y: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Spearman rho, Kendall tau(-b) and weighted tau between x and y, with permutation
    p-values and bootstrap intervals; all NaN below MIN_RANK_PAIRS finite pairs."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out: dict[str, float] = {"n": int(x.size)}
    out.update(dict.fromkeys(CORRELATION_KEYS, np.nan))
    if x.size < MIN_RANK_PAIRS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    out["weighted_tau"] = float(stats.weightedtau(x, y).statistic)
    for name in ("spearman", "kendall"):
        out[name] = float(ROW_STATISTICS[name](x[None], y[None])[0])
        out[f"{name}_p"] = permutation_p(x, y, name, seed)
        lo, hi = paired_bootstrap_ci(
            x, y, name, confidence=confidence, n_resamples=n_resamples, seed=seed
        )
        out[f"{name}_low"], out[f"{name}_high"] = lo, hi
    return out
