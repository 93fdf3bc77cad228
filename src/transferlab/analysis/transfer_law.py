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

from transferlab.analysis.curves import effective_size
from transferlab.analysis.keys import CURVE, SCRATCH
from transferlab.analysis.seed_bootstrap import expanded_interval
from transferlab.analysis.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE

#: Fewest target sizes with D_T > 0 a fit needs (two points always lie on a line).
MIN_SIZES = 3
#: Why a fitted alpha has no interval.
_NO_INTERVAL = "no interval: {share:.1%} of the seed resamples can be fitted, too few for its tails"
#: The scratch curve a fine-tuned curve is read against: the same target setting.
SCRATCH_CURVE = ["study", "model", "target", "variant"]
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


def _matrix(runs: pd.DataFrame, seeds: list) -> tuple[np.ndarray, np.ndarray]:
    """Test accuracy per (size, seed) and the examples trained on per size."""
    acc = runs.pivot_table(index="target_size", columns="seed", values="test_acc", aggfunc="mean")
    acc = acc.reindex(columns=seeds).sort_index()
    examples = pd.to_numeric(runs["train_examples"], errors="coerce").astype(float)
    used = examples.groupby(runs["target_size"]).mean().reindex(acc.index)
    sizes = pd.to_numeric(pd.Series(acc.index), errors="coerce").astype(float).to_numpy()
    return acc.to_numpy(float), used.fillna(pd.Series(sizes, index=acc.index)).to_numpy(float)


def _fit(
    d_f: np.ndarray, d_t: np.ndarray, sizes: np.ndarray | None = None
) -> tuple[float, float, float, int]:
    """alpha, k, r^2 of the line through (log D_F, log D_T) where D_T > 0, and the sizes used.
    With `sizes` (a mask), the fit is through exactly those sizes, and fails (NaN) unless every
    one of them has D_T > 0: a resample is then the same estimate on other data."""
    ok = np.isfinite(d_t) & (d_t > 0) & (d_f > 0)
    if sizes is not None:
        if not ok[sizes].all():
            return math.nan, math.nan, math.nan, int(ok[sizes].sum())
        ok = sizes
    if ok.sum() < MIN_SIZES:
        return math.nan, math.nan, math.nan, int(ok.sum())
    x, y = np.log(d_f[ok]), np.log(d_t[ok])
    dx, dy = x - x.mean(), y - y.mean()
    alpha = float(dx @ dy / (dx @ dx))
    log_k = y.mean() - alpha * x.mean()
    residual = dy - alpha * dx
    r2 = 1 - residual @ residual / (dy @ dy) if dy @ dy > 0 else math.nan
    return alpha, float(np.exp(log_k)), float(r2), int(ok.sum())


def _mean(acc: np.ndarray) -> np.ndarray:
    """Mean over seeds per size; NaN (quietly) where a size has no run of the drawn seeds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(acc, axis=1)


def _d_t(ft_acc: np.ndarray, d_f: np.ndarray, sc_x: np.ndarray, sc_acc: np.ndarray) -> np.ndarray:
    """D_T per size from mean accuracies (NaN where the scratch curve cannot say)."""
    return np.array([effective_size(a, sc_x, sc_acc)[0] for a in ft_acc]) - d_f


def _law(
    ft: pd.DataFrame, sc: pd.DataFrame, confidence: float, n_resamples: int, seed: int
) -> dict:
    seeds = sorted(set(ft["seed"]) | set(sc["seed"]))
    ft_acc, d_f = _matrix(ft, seeds)
    sc_acc, sc_x = _matrix(sc, seeds)
    point = _d_t(_mean(ft_acc), d_f, sc_x, _mean(sc_acc))
    alpha, k, r2, used = _fit(d_f, point)
    row = {"sizes": used, "alpha": alpha, "k": k, "r2": r2, "n_seeds": len(seeds)}
    if not np.isfinite(alpha):
        note = f"cannot be fitted: {used} sizes with D_T > 0, the law needs {MIN_SIZES}"
        empty = {"alpha_low": math.nan, "alpha_high": math.nan, "fitted_share": math.nan}
        return {**row, **empty, "note": note}
    sizes = np.isfinite(point) & (point > 0) & (d_f > 0)  # the point estimate's sizes
    rng = np.random.default_rng(seed)
    draws = np.full(n_resamples, math.nan)
    for i in range(n_resamples):
        idx = rng.integers(0, len(seeds), size=len(seeds))
        d_t = _d_t(_mean(ft_acc[:, idx]), d_f, sc_x, _mean(sc_acc[:, idx]))
        draws[i] = _fit(d_f, d_t, sizes)[0]
    share = float(np.isfinite(draws).mean())
    low, high = expanded_interval(draws, confidence, len(seeds), failed_as_worst=True)
    note = "" if np.isfinite(low) and np.isfinite(high) else _NO_INTERVAL.format(share=share)
    return {**row, "alpha_low": low, "alpha_high": high, "fitted_share": share, "note": note}


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
    scratch = selected[selected["source"].eq(SCRATCH)]
    by_setting = {key: g for key, g in scratch.groupby(SCRATCH_CURVE, dropna=False)}
    rows = []
    finetuned = selected[~selected["source"].eq(SCRATCH)]
    for key, ft in finetuned.groupby(CURVE, dropna=False, sort=True):
        sc = by_setting.get(tuple(ft.iloc[0][c] for c in SCRATCH_CURVE))
        if sc is None or ft["target_size"].nunique() < MIN_SIZES:
            continue  # no curve over sizes to fit: not a scaling study
        rows.append({**dict(zip(CURVE, key)), **_law(ft, sc, confidence, n_resamples, seed)})
    return pd.DataFrame(rows, columns=COLUMNS)
