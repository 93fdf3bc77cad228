"""Learning curves over target size, gain crossings, effective data transferred (Hernandez et
al. 2021), freeze-depth profiles and convergence speed, from the selected runs of each arm.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from transferlab.analysis.keys import CURVE, SCRATCH, SETTING
from transferlab.analysis.stats import CONFIDENCE, group_rows, grouped_mean_ci

#: Share of the scratch run's final validation accuracy that counts as "converged".
CONVERGENCE_FRACTION = 0.95


def learning_curves(selected: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Mean test accuracy (t-interval over seeds) and mean validation accuracy per arm and
    target size; ``examples`` is the mean number of training examples actually used."""
    keys = [*CURVE, "target_size"]
    cols = [*keys, "examples", "n", "test_acc", "ci_low", "ci_high", "val_acc"]
    if selected.empty:
        return pd.DataFrame(columns=cols)
    frame = selected.assign(
        examples=pd.to_numeric(selected["train_examples"], errors="coerce").astype(float)
    )
    groups = frame.groupby(keys, dropna=False, sort=True)
    test = grouped_mean_ci(groups["test_acc"], confidence)
    out = pd.DataFrame(
        {
            "examples": groups["examples"].mean(),
            "n": groups["seed"].nunique(),
            "test_acc": test["mean"],
            "ci_low": test["ci_low"],
            "ci_high": test["ci_high"],
            "val_acc": groups["val_acc"].mean(),
        }
    ).reset_index()
    sizes = pd.to_numeric(out["target_size"], errors="coerce").astype(float)
    out["examples"] = out["examples"].fillna(sizes)
    return out[cols]


#: Flags of a cell whose gain differs from zero after correction.
SIGNIFICANT = ("positive", "negative")


def _crossing(x: np.ndarray, g: np.ndarray, flags: np.ndarray) -> tuple[float, str, bool]:
    """First size where the mean gain changes sign, interpolated linearly in log size; also
    whether a cell on either side of it is significant (else the sign change may be noise)."""
    ok = np.isfinite(x) & np.isfinite(g) & (x > 0)
    x, g, flags = x[ok], g[ok], flags[ok]
    if x.size == 0:
        return math.nan, "no gain estimate", False
    for i in range(x.size):
        if g[i] == 0:
            return float(x[i]), "gain is zero here", bool(np.isin(flags[i], SIGNIFICANT))
        if i + 1 < x.size and np.sign(g[i]) != np.sign(g[i + 1]) and g[i + 1] != 0:
            lx = np.log(x[i : i + 2])
            at = lx[0] + (0 - g[i]) * (lx[1] - lx[0]) / (g[i + 1] - g[i])
            way = "positive to negative" if g[i] > 0 else "negative to positive"
            significant = bool(np.isin(flags[i : i + 2], SIGNIFICANT).any())
            note = f"crosses zero from {way} as the target grows"
            if not significant:
                note += " (neither neighbouring cell is significant)"
            return float(np.exp(at)), note, significant
    return math.nan, "gain > 0 at every size" if g[0] > 0 else "gain < 0 at every size", False


def gain_crossings(cells: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per source curve, the target size at which the mean gain crosses zero (NaN if never)."""
    sizes = curves[curves["source"].eq(SCRATCH)][[*SETTING, "examples"]]
    table = cells.merge(sizes, on=SETTING, how="left").sort_values("examples")
    examples, gains = table["examples"].to_numpy(float), table["gain"].to_numpy(float)
    flags = table["flag"].to_numpy(object)
    rows = []
    for key, members in zip(*group_rows(table, CURVE, sort=True)):
        size, note, significant = _crossing(examples[members], gains[members], flags[members])
        rows.append(
            {
                **dict(zip(CURVE, key)),
                "crossing_size": size,
                "significant": significant,
                "note": note,
            }
        )
    return pd.DataFrame(rows, columns=[*CURVE, "crossing_size", "significant", "note"])


def effective_size(acc: float, xs: np.ndarray, accs: np.ndarray) -> tuple[float, str]:
    """Scratch examples needed to reach ``acc``, read off the scratch curve in log size."""
    ok = np.isfinite(xs) & np.isfinite(accs) & (xs > 0)
    xs, accs = xs[ok], accs[ok]
    if xs.size < 2 or not np.isfinite(acc):
        return math.nan, "scratch curve has fewer than two sizes"
    order = np.argsort(xs)
    xs, mono = xs[order], np.maximum.accumulate(accs[order])
    if acc < mono[0]:
        return math.nan, f"below the scratch curve (less than {xs[0]:g} scratch examples)"
    if acc > mono[-1]:
        return math.nan, f"above the scratch curve (more than {xs[-1]:g} scratch examples)"
    if not (np.diff(mono) > 0).any():
        return float(xs[0]), "scratch curve is flat"
    return float(_read_curves(np.array([[acc]]), xs, mono[None])[0, 0]), ""


def effective_sizes(acc: np.ndarray, xs: np.ndarray, accs: np.ndarray) -> np.ndarray:
    """`effective_size` for many scratch curves at once (a bootstrap's resamples): ``acc`` holds
    each row's accuracies to read, ``accs`` each row's scratch accuracies at the sizes ``xs``.
    A row whose scratch curve misses a size is read by `effective_size` itself; the others on
    arrays, with the same arithmetic (`_read_curves`), so every number equals the one-at-a-time
    reading on any machine (`np.interp`'s own rounding differs where it uses fused
    multiply-adds)."""
    acc, accs = np.atleast_2d(acc).astype(float), np.atleast_2d(accs).astype(float)
    out = np.full(acc.shape, math.nan)
    usable = np.isfinite(xs) & (xs > 0)
    if usable.sum() < 2:
        return out
    order = np.argsort(xs[usable])
    sizes, curves = xs[usable][order], accs[:, usable][:, order]
    complete = np.isfinite(curves).all(axis=1)
    for row in np.flatnonzero(~complete):
        out[row] = [effective_size(a, xs, accs[row])[0] for a in acc[row]]
    monotone = np.maximum.accumulate(curves[complete], axis=1)
    out[complete] = _read_curves(acc[complete], sizes, monotone)
    return out


def _read_curves(acc: np.ndarray, sizes: np.ndarray, mono: np.ndarray) -> np.ndarray:
    """Each row's accuracies read off its monotone curve (`mono` over the sorted `sizes`, in
    log size): linear interpolation over the curve's strictly increasing support (a plateau
    reads as its first size), as `np.interp` reads it up to rounding."""
    width, log_size = mono.shape[1], np.log(sizes)
    first = np.c_[np.ones(len(mono), bool), np.diff(mono, axis=1) > 0]
    start = np.maximum.accumulate(np.where(first, np.arange(width), 0), axis=1)  # plateau start
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(acc) & (acc >= mono[:, :1]) & (acc <= mono[:, -1:])
        last = (mono[:, None, :] <= acc[:, :, None]).sum(axis=2) - 1  # last point at or below
    last = np.clip(last, 0, width - 1)
    below = np.take_along_axis(start, last, axis=1)  # support points around each accuracy
    above = np.minimum(last + 1, width - 1)
    acc_below, log_below = np.take_along_axis(mono, below, axis=1), log_size[below]
    acc_above, log_above = np.take_along_axis(mono, above, axis=1), log_size[above]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (log_above - log_below) / (acc_above - acc_below)
        between = slope * (acc - acc_below) + log_below
    on_point = (acc == acc_below) | (last == width - 1)
    read = np.exp(np.where(on_point, log_below, between))
    flat = first.sum(axis=1, keepdims=True) < 2
    read = np.where(flat, sizes[0], read)
    return np.where(inside, read, math.nan)


def effective_data(curves: pd.DataFrame) -> pd.DataFrame:
    """Effective data transferred per fine-tuned arm and size: D_E (scratch examples that match
    the fine-tuned accuracy), D_T = D_E - D_F and D_E / D_F."""
    scratch = curves[curves["source"].eq(SCRATCH)]
    curve_of = ["study", "model", "target", "variant"]
    lookup = {
        key: (g["examples"].to_numpy(float), g["test_acc"].to_numpy(float))
        for key, g in scratch.groupby(curve_of, dropna=False)
    }
    rows = []
    for row in curves[~curves["source"].eq(SCRATCH)].itertuples(index=False):
        sc = lookup.get(tuple(getattr(row, k) for k in curve_of))
        if sc is None:
            d_e, note = math.nan, "no scratch curve"
        else:
            d_e, note = effective_size(row.test_acc, *sc)
        rows.append(
            {
                **{k: getattr(row, k) for k in [*CURVE, "target_size"]},
                "d_f": row.examples,
                "finetuned_acc": row.test_acc,
                "d_e": d_e,
                "d_t": d_e - row.examples,
                "ratio": d_e / row.examples,
                "note": note,
            }
        )
    cols = [*CURVE, "target_size", "d_f", "finetuned_acc", "d_e", "d_t", "ratio", "note"]
    return pd.DataFrame(rows, columns=cols)


def best_depths(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (source, target size), the freeze depth with the best mean validation accuracy (never
    test), with its test accuracy and the depths compared."""
    ft = curves[~curves["source"].eq(SCRATCH)].dropna(subset=["val_acc"])
    keys = [c for c in CURVE if c != "freeze_depth"] + ["target_size"]
    cols = [*keys, "best_depth", "val_acc", "test_acc", "depths"]
    if ft.empty:
        return pd.DataFrame(columns=cols)
    groups = ft.groupby(keys, dropna=False, sort=True)
    best = ft.loc[groups["val_acc"].idxmax()].set_index(keys)
    depths = groups["freeze_depth"].agg(lambda d: " ".join(str(int(v)) for v in sorted(d)))
    best = best.assign(best_depth=best["freeze_depth"].astype(int), depths=depths)
    return best.reset_index()[cols]


def _epochs_to(curve: tuple, threshold: float) -> float:
    for i, value in enumerate(curve):
        if value >= threshold:
            return float(i + 1)
    return math.nan


def convergence(
    pairs: pd.DataFrame, fraction: float = CONVERGENCE_FRACTION, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """Validation epochs until each arm reaches ``fraction`` of the paired scratch run's final
    validation accuracy, per cell: means, the paired difference and runs that never got there."""
    ft_epochs, sc_epochs = [], []
    for ft_curve, sc_curve in zip(pairs["ft_val_curve"], pairs["scratch_val_curve"]):
        final = sc_curve[-1] if len(sc_curve) else math.nan
        if not np.isfinite(final):
            ft_epochs.append(math.nan)
            sc_epochs.append(math.nan)
            continue
        ft_epochs.append(_epochs_to(ft_curve, fraction * final))
        sc_epochs.append(_epochs_to(sc_curve, fraction * final))
    table = pairs[[*CURVE, "target_size", "seed"]].assign(
        ft_epochs=ft_epochs, scratch_epochs=sc_epochs
    )
    table["difference"] = table["ft_epochs"] - table["scratch_epochs"]
    table["ft_never"] = table["ft_epochs"].isna().astype(int)
    table["scratch_never"] = table["scratch_epochs"].isna().astype(int)
    keys = [*CURVE, "target_size"]
    groups = table.groupby(keys, dropna=False, sort=True)
    diff = grouped_mean_ci(groups["difference"], confidence)
    rows = pd.DataFrame(
        {
            "n": groups["seed"].size(),
            "ft_epochs": groups["ft_epochs"].mean(),
            "scratch_epochs": groups["scratch_epochs"].mean(),
            "difference": diff["mean"],
            "ci_low": diff["ci_low"],
            "ci_high": diff["ci_high"],
            "ft_never": groups["ft_never"].sum(),
            "scratch_never": groups["scratch_never"].sum(),
        }
    ).reset_index()
    cols = [
        *keys,
        "n",
        "ft_epochs",
        "scratch_epochs",
        "difference",
        "ci_low",
        "ci_high",
        "ft_never",
        "scratch_never",
    ]
    out = rows.reindex(columns=cols)
    out.attrs["fraction"] = fraction
    return out
