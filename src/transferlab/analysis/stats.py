"""Statistics: intervals, multiple-comparison control, the interquartile mean, rank agreement
(study-level intervals that resample seeds: `seed_bootstrap`).
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


def group_rows(frame: pd.DataFrame, keys: list[str], *, sort: bool) -> tuple[list, list]:
    """Each group's key and row positions (in row order), in the order and with the keys that
    iterating `frame.groupby(keys, dropna=False, sort=sort)` gives, without building a frame
    per group (thousands of cells in a large study)."""
    if frame.empty:
        return [], []
    grouped = frame.groupby(keys, dropna=False, sort=sort)
    sizes = grouped.size()  # its index: the groups' keys, in ngroup's order
    order = np.argsort(grouped.ngroup().to_numpy(), kind="stable")
    names = list(sizes.index) if len(keys) > 1 else [(name,) for name in sizes.index]
    return names, np.split(order, np.cumsum(sizes.to_numpy())[:-1])


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


def q_per_study(table: pd.DataFrame, p: str, q: str, correction: str) -> pd.DataFrame:
    """`table` with column `q`: column `p` adjusted by `correction` within each study (one
    family per study), NaN where p is not a number."""
    table[q] = np.nan
    for _, family in table.groupby("study", sort=False):
        tested = family[np.isfinite(family[p].to_numpy(float))]
        if len(tested):
            table.loc[tested.index, q] = adjust_pvalues(tested[p].to_numpy(float), correction)
    return table
