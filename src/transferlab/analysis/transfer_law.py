"""The power law of effective data transferred (Hernandez et al. 2021, "Scaling laws for
transfer"): in the low-data regime D_T = k * D_F**alpha * N**beta. One study here has one model
size N, so N**beta is a constant folded into k and the law is a line through
(log D_F, log D_T).

Per fine-tuned curve (an arm over target sizes): D_T at each size from the seed-mean accuracies
(`curves.effective_size`: the scratch examples that reach the fine-tuned accuracy, minus the
examples fine-tuned on), the least-squares line through the sizes where D_T > 0, and an
interval for alpha from resampling seeds jointly: every size shares the seed's source
checkpoint and the scratch curve D_T is read off, so the sizes are resampled together
(`seed_bootstrap`, expanded percentile interval).

The fit cannot be computed honestly with fewer than `MIN_SIZES` sizes with D_T > 0 (a line
through two points has no residual: the law would not be tested), nor can its interval when
resamples that cannot be fitted through the point estimate's sizes are not rarer than the
interval's tails (each such resample counts as the worst case on both sides, so leaving them
out cannot narrow the interval); the row says so in `note` and leaves the numbers empty.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from transferlab.analysis.curves import effective_sizes
from transferlab.analysis.keys import CURVE, SCRATCH
from transferlab.analysis.seed_bootstrap import expanded_interval
from transferlab.analysis.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE, group_rows

#: Fewest target sizes with D_T > 0 a fit needs (two points always lie on a line).
MIN_SIZES = 3
#: Why a fitted alpha has no interval.
_NO_INTERVAL = "no interval: {share:.1%} of the seed resamples can be fitted, too few for its tails"
#: The scratch curve a fine-tuned curve is read against: the same target setting.
SCRATCH_CURVE = ["study", "model", "target", "variant"]
#: A run's columns the law reads.
RUN = ["target_size", "seed", "test_acc", "train_examples"]
COLUMNS = [
    *CURVE,
    "sizes",
    "alpha",
    "alpha_low",
    "alpha_high",
    "k",
    "r2",
    "n_seeds",
    "fitted_share",
    "note",
]


def _matrix(runs: dict[str, np.ndarray], seeds: list) -> tuple[np.ndarray, np.ndarray]:
    """Test accuracy per (size, seed), sizes ascending, and the examples trained on per size,
    from a curve's runs (`RUN`, train_examples as numbers); a size without any accuracy is
    left out. Laid out on arrays in the usual case (one run per size and seed, whole example
    counts), else by `_pivoted`: the same numbers either way."""
    size_of, sizes = pd.factorize(runs["target_size"], sort=True)
    seed_of = pd.Index(seeds).get_indexer(runs["seed"])
    cell = size_of * len(seeds) + seed_of
    examples = runs["train_examples"].astype(float)
    counted = np.isfinite(examples)
    exact = (examples[counted] == np.round(examples[counted])).all()  # whole: exact sums
    if (size_of < 0).any() or (seed_of < 0).any() or not exact or len(set(cell)) < len(cell):
        return _pivoted(pd.DataFrame(runs), seeds)
    acc = np.full((len(sizes), len(seeds)), math.nan)
    acc.flat[cell] = runs["test_acc"].astype(float)
    n = np.bincount(size_of[counted], minlength=len(sizes))
    total = np.bincount(size_of[counted], weights=examples[counted], minlength=len(sizes))
    with np.errstate(invalid="ignore"):
        used = np.where(n > 0, total / n, pd.to_numeric(pd.Series(sizes), errors="coerce"))
    kept = ~np.isnan(acc).all(axis=1)
    return acc[kept], used[kept].astype(float)


def _pivoted(runs: pd.DataFrame, seeds: list) -> tuple[np.ndarray, np.ndarray]:
    """`_matrix` through a pivot table: the mean of a seed's runs of a size."""
    acc = runs.pivot_table(index="target_size", columns="seed", values="test_acc", aggfunc="mean")
    acc = acc.reindex(columns=seeds).sort_index()
    used = runs["train_examples"].groupby(runs["target_size"]).mean().reindex(acc.index)
    sizes = pd.to_numeric(pd.Series(acc.index), errors="coerce").astype(float).to_numpy()
    return acc.to_numpy(float), used.fillna(pd.Series(sizes, index=acc.index)).to_numpy(float)


def _fit(d_f: np.ndarray, d_t: np.ndarray) -> tuple[float, float, float, int]:
    """alpha, k, r^2 of the line through (log D_F, log D_T) where D_T > 0, and the sizes used."""
    ok = np.isfinite(d_t) & (d_t > 0) & (d_f > 0)
    if ok.sum() < MIN_SIZES:
        return math.nan, math.nan, math.nan, int(ok.sum())
    x, y = np.log(d_f[ok]), np.log(d_t[ok])
    dx, dy = x - x.mean(), y - y.mean()
    alpha = float(dx @ dy / (dx @ dx))
    log_k = y.mean() - alpha * x.mean()
    residual = dy - alpha * dx
    r2 = 1 - residual @ residual / (dy @ dy) if dy @ dy > 0 else math.nan
    return alpha, float(np.exp(log_k)), float(r2), int(ok.sum())


def _means(acc: np.ndarray, drawn: np.ndarray | None = None) -> np.ndarray:
    """Mean accuracy per size over the seeds, as (rows, sizes): over every seed once, or for
    each row of `drawn` (a resample's seed indices) over the drawn seeds' runs; NaN (quietly)
    where a size has no run among them. Summed as `np.nanmean` sums: a mean that ties with
    another (accuracies are counts over a test set) must tie here too, or a reading off the
    scratch curve would jump."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if drawn is None:
            return np.nanmean(acc, axis=1)[None]
        return np.nanmean(acc[:, drawn], axis=2).T


def _d_t(ft_acc: np.ndarray, d_f: np.ndarray, sc_x: np.ndarray, sc_acc: np.ndarray) -> np.ndarray:
    """D_T per (row of drawn seeds, size) from the mean accuracies (NaN where the scratch curve
    cannot say)."""
    return effective_sizes(ft_acc, sc_x, sc_acc) - d_f


def _alphas(d_f: np.ndarray, d_t: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """`_fit`'s alpha for each row of D_T through exactly the point estimate's `sizes` (NaN for
    a row where one of them has no D_T > 0): a resample is the same estimate on other data."""
    fitted = (np.isfinite(d_t[:, sizes]) & (d_t[:, sizes] > 0)).all(axis=1)
    x = np.log(d_f[sizes])
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(d_t[:, sizes])
    dx, dy = x - x.mean(), y - y.mean(axis=1, keepdims=True)
    return np.where(fitted, (dy @ dx) / (dx @ dx), math.nan)


def _law(
    ft: tuple[np.ndarray, np.ndarray],
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray],
    drawn: np.ndarray,
    confidence: float,
) -> dict:
    """The fit and its seed-bootstrap interval (resamples `drawn`) for one fine-tuned curve
    (`_matrix` of its runs) against its scratch curve on the same seeds (`_scratch_curve`)."""
    (ft_acc, d_f), (sc_point, sc_drawn, sc_x) = ft, scratch
    n_seeds = ft_acc.shape[1]
    (point,) = _d_t(_means(ft_acc), d_f, sc_x, sc_point)
    alpha, k, r2, used = _fit(d_f, point)
    row = {"sizes": used, "alpha": alpha, "k": k, "r2": r2, "n_seeds": n_seeds}
    if not np.isfinite(alpha):
        note = f"cannot be fitted: {used} sizes with D_T > 0, the law needs {MIN_SIZES}"
        empty = {"alpha_low": math.nan, "alpha_high": math.nan, "fitted_share": math.nan}
        return {**row, **empty, "note": note}
    sizes = np.isfinite(point) & (point > 0) & (d_f > 0)  # the point estimate's sizes
    draws = _alphas(d_f, _d_t(_means(ft_acc, drawn), d_f, sc_x, sc_drawn), sizes)
    share = float(np.isfinite(draws).mean())
    low, high = expanded_interval(draws, confidence, n_seeds, failed_as_worst=True)
    note = "" if np.isfinite(low) and np.isfinite(high) else _NO_INTERVAL.format(share=share)
    return {**row, "alpha_low": low, "alpha_high": high, "fitted_share": share, "note": note}


def _scratch_curve(
    runs: dict[str, np.ndarray], seeds: list, drawn: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A scratch curve's seed means over every seed and per resample, and its examples per
    size: shared by every fine-tuned curve of its target setting, so read once."""
    acc, examples = _matrix(runs, seeds)
    return _means(acc), _means(acc, drawn), examples


def transfer_law(
    selected: pd.DataFrame,
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Per fine-tuned curve with a scratch curve on the same target setting: the fitted
    exponent alpha of D_T = k * D_F**alpha with its seed-bootstrap interval, k, the fit's r^2
    in log-log space and the number of sizes it rests on (see the module docstring)."""
    if selected.empty:
        return pd.DataFrame(columns=COLUMNS)
    examples = pd.to_numeric(selected["train_examples"], errors="coerce").astype(float)
    runs = selected[[*CURVE, *RUN]].assign(train_examples=examples)
    is_scratch = runs["source"].eq(SCRATCH)
    by_setting = {
        key: ({c: g[c].to_numpy() for c in RUN}, set(g["seed"]))
        for key, g in runs[is_scratch].groupby(SCRATCH_CURVE, dropna=False)
    }
    finetuned = runs[~is_scratch]
    columns = {c: finetuned[c].to_numpy() for c in RUN}
    tables: dict = {}  # a scratch curve per seeds, shared by the fine-tuned curves
    resamples: dict = {}  # the seeds drawn, per number of seeds (as if each curve drew them)
    rows = []
    for key, members in zip(*group_rows(finetuned, CURVE, sort=True)):
        curve = dict(zip(CURVE, key))
        ft = {c: values[members] for c, values in columns.items()}
        setting = tuple(curve[c] for c in SCRATCH_CURVE)
        if setting not in by_setting or pd.Series(ft["target_size"]).nunique() < MIN_SIZES:
            continue  # no curve over sizes to fit: not a scaling study
        sc, sc_seeds = by_setting[setting]
        seeds = sorted(set(ft["seed"]) | sc_seeds)
        n, shared = len(seeds), (setting, *seeds)
        if n not in resamples:
            resamples[n] = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
        if shared not in tables:
            tables[shared] = _scratch_curve(sc, seeds, resamples[n])
        rows.append({**curve, **_law(_matrix(ft, seeds), tables[shared], resamples[n], confidence)})
    return pd.DataFrame(rows, columns=COLUMNS)
