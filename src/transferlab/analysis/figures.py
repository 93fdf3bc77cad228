"""Figures as PNG (matplotlib Figure objects rendered by Agg, no pyplot state): gain heatmaps,
learning curves with interval bands, freeze-depth profiles, gain against shift and estimator
against realised accuracy. Each function returns the paths it wrote.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from transferlab.analysis.estimators import ESTIMATORS
from transferlab.analysis.keys import PAIR, SCRATCH
from transferlab.analysis.relation import pair_gains
from transferlab.analysis.tables import size_label

DPI = 110
PANEL = (3.6, 3.0)
FLAG_MARKS = {
    "positive": "+",
    "negative": "\u2212",
    "inconclusive": "",
    "too-few-seeds": "?",
    "single-seed": "?",
}
GAIN_CMAP = "RdBu"
MIN_COLOUR_RANGE = 0.01
BAND_ALPHA = 0.2
MAX_COLUMNS = 4


def slug(*parts: object) -> str:
    """A file-name-safe name from parts."""
    text = "_".join(str(p) for p in parts if p is not None and str(p) != "")
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")[:150] or "figure"


def _grid(n: int) -> tuple[Figure, list]:
    cols = min(n, MAX_COLUMNS)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(PANEL[0] * cols, PANEL[1] * rows), dpi=DPI)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _size_order(values: pd.Series) -> list:
    known = sorted(int(v) for v in values.dropna().unique())
    return known + ([pd.NA] if values.isna().any() else [])


#: How plain fine-tuning is named in the heatmaps' rows.
PLAIN = "finetune"


def _method_names(frame: pd.DataFrame) -> pd.Series:
    """Each row's method with its settings (plain fine-tuning, and scratch: PLAIN)."""
    if "method" not in frame.columns:
        return pd.Series(PLAIN, index=frame.index)
    return frame["method"].fillna("").replace("", PLAIN)


def _arm_row(row: Any) -> tuple[str, int]:
    """(method with its settings, freeze depth): one heatmap row."""
    return str(getattr(row, "method", "") or PLAIN), int(row.freeze_depth)


def _row_labels(rows: list[tuple[str, int]]) -> tuple[list[str], bool]:
    """Row labels (the depth alone when every row is plain fine-tuning; a method's name
    without its settings unless two rows share it) and whether every row is plain."""
    names = [method.split("(", 1)[0] for method, _ in rows]
    if all(name == PLAIN for name in names):
        return [str(depth) for _, depth in rows], True
    labels = [
        f"{name} ({depth})" if name == PLAIN else (name if names.count(name) == 1 else method)
        for name, (method, depth) in zip(names, rows)
    ]
    return labels, False


def gain_heatmaps(cells: pd.DataFrame, out: Path) -> list[Path]:
    """Per (study, model, target): one panel per source, gain over freeze depth x target size;
    + / - mark cells flagged positive / negative after correction, ? too few seeds."""
    paths = []
    for (study, model, target), frame in cells.groupby(["study", "model", "target"], sort=True):
        sources = sorted(frame["source"].unique())
        sizes = _size_order(frame["target_size"])
        rows = sorted({_arm_row(r) for r in frame.itertuples(index=False)})
        labels, plain = _row_labels(rows)
        span = max(
            float(np.nanmax(np.abs(frame["gain"]))) if frame["gain"].notna().any() else 0.0,
            MIN_COLOUR_RANGE,
        )
        fig, axes = _grid(len(sources))
        for ax, source in zip(axes, sources):
            grid = np.full((len(rows), len(sizes)), np.nan)
            marks = np.full(grid.shape, "", dtype=object)
            for row in frame[frame["source"].eq(source)].itertuples(index=False):
                i = rows.index(_arm_row(row))
                j = next(
                    k for k, s in enumerate(sizes) if size_label(s) == size_label(row.target_size)
                )
                grid[i, j] = row.gain
                marks[i, j] = FLAG_MARKS.get(row.flag, "")
            image = ax.imshow(
                grid, cmap=GAIN_CMAP, aspect="auto", norm=TwoSlopeNorm(0.0, -span, span)
            )
            for (i, j), value in np.ndenumerate(grid):
                text = "n/a" if np.isnan(value) else f"{value:+.2f}{marks[i, j]}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8)
            ax.set_xticks(range(len(sizes)), [size_label(s) for s in sizes])
            ax.set_yticks(range(len(rows)), labels)
            ax.set_xlabel("target size")
            ax.set_ylabel("freeze depth" if plain else "method (freeze depth)")
            ax.set_title(f"{source}", fontsize=9)
            fig.colorbar(image, ax=ax, label="gain (test acc)")
        fig.suptitle(
            f"Transfer gain on {target} ({model}); +/\u2212 significant after correction",
            fontsize=10,
        )
        paths.append(_save(fig, out / f"{slug('gain_heatmap', study, model, target)}.png"))
    return paths


def _band(ax, frame: pd.DataFrame, x: str, label: str, style: str = "-o") -> None:
    frame = frame.sort_values(x)
    line = ax.plot(frame[x], frame["test_acc"], style, label=label, markersize=4)[0]
    ax.fill_between(
        frame[x], frame["ci_low"], frame["ci_high"], alpha=BAND_ALPHA, color=line.get_color()
    )


def learning_curves(curves: pd.DataFrame, out: Path) -> list[Path]:
    """Per (study, model, target, method or freeze depth): test accuracy against training
    examples (log) for each source and for scratch, with 95% interval bands over seeds."""
    paths = []
    scratch = curves[curves["source"].eq(SCRATCH)]
    ft = curves[~curves["source"].eq(SCRATCH)].assign(_method=lambda f: _method_names(f))
    for (study, model, target, method, depth), frame in ft.groupby(
        ["study", "model", "target", "_method", "freeze_depth"], sort=True
    ):
        fig = Figure(figsize=(5.5, 4), dpi=DPI)
        ax = fig.subplots()
        base = scratch[
            scratch["study"].eq(study) & scratch["model"].eq(model) & scratch["target"].eq(target)
        ]
        if not base.empty:
            _band(ax, base, "examples", "scratch", "--ks")
        for source, group in frame.groupby("source", sort=True):
            _band(ax, group, "examples", str(source))
        ax.set_xscale("log")
        ticks = sorted(set(frame["examples"].dropna()) | set(base["examples"].dropna()))
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("target training examples")
        ax.set_ylabel("test accuracy")
        how = f"freeze depth {depth}" if method == PLAIN else f"method {method}"
        ax.set_title(f"{target}, {model}, {how}", fontsize=10)
        ax.legend(fontsize=7)
        arm = f"depth{depth}" if method == PLAIN else method
        name = slug("learning_curve", study, model, target, arm)
        paths.append(_save(fig, out / f"{name}.png"))
    return paths


def freeze_profiles(curves: pd.DataFrame, out: Path) -> list[Path]:
    """Per (study, model, target): one panel per target size, plain fine-tuning's test accuracy
    against freeze depth for each source, scratch as a horizontal band."""
    paths = []
    plain = curves[_method_names(curves).eq(PLAIN)]  # freeze depth is plain fine-tuning's
    for (study, model, target), frame in plain.groupby(["study", "model", "target"], sort=True):
        sizes = _size_order(frame["target_size"])
        fig, axes = _grid(len(sizes))
        for ax, size in zip(axes, sizes):
            at = frame[frame["target_size"].map(size_label).eq(size_label(size))]
            base = at[at["source"].eq(SCRATCH)]
            if not base.empty:
                row = base.iloc[0]
                ax.axhline(row["test_acc"], color="k", linestyle="--", label="scratch")
                if np.isfinite(row["ci_low"]):
                    ax.axhspan(row["ci_low"], row["ci_high"], color="k", alpha=BAND_ALPHA / 2)
            for source, group in at[~at["source"].eq(SCRATCH)].groupby("source", sort=True):
                group = group.sort_values("freeze_depth")
                err = np.vstack(
                    [group["test_acc"] - group["ci_low"], group["ci_high"] - group["test_acc"]]
                )
                ax.errorbar(
                    group["freeze_depth"].astype(int),
                    group["test_acc"],
                    yerr=np.nan_to_num(err),
                    marker="o",
                    capsize=3,
                    label=str(source),
                )
            ax.set_xlabel("freeze depth")
            ax.set_ylabel("test accuracy")
            ax.set_title(f"{size_label(size)} target examples", fontsize=9)
        if axes:
            axes[0].legend(fontsize=7, framealpha=0.6)
        fig.suptitle(f"Freeze-depth profiles on {target} ({model})", fontsize=10)
        paths.append(_save(fig, out / f"{slug('freeze_profile', study, model, target)}.png"))
    return paths


def _annotate(ax, x: Sequence[float], y: Sequence[float], labels: Sequence[str]) -> None:
    for xi, yi, label in zip(x, y, labels):
        ax.annotate(str(label), (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")


def gain_vs_shift(
    shift: pd.DataFrame,
    cells: pd.DataFrame,
    correlations: pd.DataFrame,
    out: Path,
    measures: Sequence[str],
) -> list[Path]:
    """Per (study, model): the pair gain against each distance, pixel and feature space, one
    colour per arm with its Spearman rho in the legend (pairs named when there is one arm)."""
    ok = shift[shift["status"].eq("ok")]
    if ok.empty or cells.empty:
        return []
    table = ok.merge(pair_gains(cells), on=PAIR)
    paths = []
    for (study, model), frame in table.groupby(["study", "model"], sort=True):
        spaces = sorted(frame["space"].unique())
        arms = sorted(frame["arm"].unique())
        fig, axes = _grid(len(spaces) * len(measures))
        for k, (space, measure) in enumerate((s, m) for s in spaces for m in measures):
            ax = axes[k]
            rho = (
                correlations[
                    correlations["study"].eq(study)
                    & correlations["model"].eq(model)
                    & correlations["space"].eq(space)
                    & correlations["distance"].eq(measure)
                ]
                .groupby("arm")["spearman"]
                .first()
            )
            for arm in arms:
                sub = frame[frame["space"].eq(space) & frame["arm"].eq(arm)]
                ax.scatter(
                    sub[measure], sub["gain"], label=f"{arm} (rho {rho.get(arm, np.nan):+.2f})"
                )
                if len(arms) == 1:
                    _annotate(
                        ax, sub[measure], sub["gain"], sub["source"] + "\u2192" + sub["target"]
                    )
            ax.axhline(0.0, color="grey", linewidth=0.8)
            ax.set_title(f"{space}: {measure}", fontsize=9)
            ax.set_xlabel(measure)
            ax.set_ylabel("gain")
            ax.legend(fontsize=6)
        paths.append(_save(fig, out / f"{slug('gain_vs_shift', study, model)}.png"))
    return paths


def estimator_vs_accuracy(joined: pd.DataFrame, out: Path) -> list[Path]:
    """Per (study, model, target): each estimator's score against the realised fine-tuned test
    accuracy, one colour per target size."""
    paths = []
    for (study, model, target), frame in joined.groupby(["study", "model", "target"], sort=True):
        fig, axes = _grid(len(ESTIMATORS))
        for ax, name in zip(axes, ESTIMATORS):
            for size in _size_order(frame["target_size"]):
                group = frame[frame["target_size"].map(size_label).eq(size_label(size))]
                ax.scatter(group[name], group["finetuned_acc"], label=f"n={size_label(size)}")
                for row in group.itertuples(index=False):
                    ax.annotate(
                        str(row.source),
                        (getattr(row, name), row.finetuned_acc),
                        fontsize=6,
                        xytext=(2, 2),
                        textcoords="offset points",
                    )
            ax.set_xlabel(name)
            ax.set_ylabel("fine-tuned test accuracy")
            ax.legend(fontsize=6)
        fig.suptitle(f"Estimators against realised accuracy on {target} ({model})", fontsize=10)
        paths.append(_save(fig, out / f"{slug('estimators', study, model, target)}.png"))
    return paths


def _interval_panel(ax, frame: pd.DataFrame, value: str, low: str, high: str, xlabel: str) -> None:
    """One row per (target, method): `value` with its interval, a line at 0."""
    labels = [f"{r.target}\n{str(r.method).split('(', 1)[0]}" for r in frame.itertuples()]
    y = np.arange(len(frame))
    centre = frame[value].to_numpy(float)
    spread = np.vstack([centre - frame[low].to_numpy(float), frame[high].to_numpy(float) - centre])
    ax.errorbar(centre, y, xerr=np.abs(spread), fmt="o", capsize=3, markersize=4)
    ax.axvline(0.0, color="k", linewidth=0.8)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel, fontsize=9)


def adaptation_figure(
    table: pd.DataFrame | None, shift: pd.DataFrame | None, out: Path, distance: str = "mmd2"
) -> list[Path]:
    """Per study and selection rule: each adaptation arm's test-accuracy difference from
    source_only with its interval, beside the change of the measured shift (`distance` on the
    adapted features, adapted minus source_only) with its interval."""
    if table is None or table.empty:
        return []
    paths = []
    for (study, selection), frame in table.groupby(["study", "adapt_selection"], sort=True):
        frame = frame.sort_values(["target", "method"])
        fig = Figure(figsize=(9, 0.5 + 0.45 * len(frame)), dpi=DPI)
        left, right = fig.subplots(1, 2, sharey=True)
        _interval_panel(
            left, frame, "d_vs_source_only", "ci_low", "ci_high", "test accuracy minus source_only"
        )
        rows = shift[shift["distance"].eq(distance)] if shift is not None else pd.DataFrame()
        if not rows.empty:
            rows = frame[["target", "method"]].merge(rows, on=["target", "method"], how="left")
            _interval_panel(
                right,
                rows,
                "change",
                "change_low",
                "change_high",
                f"{distance} on adapted features minus source_only's",
            )
        fig.suptitle(
            f"{study}: adaptation against source_only (selection: {selection})", fontsize=10
        )
        paths.append(_save(fig, out / f"{slug('adaptation', study, selection)}.png"))
    return paths


def drift_figure(
    accuracy: pd.DataFrame | None, forgotten: pd.DataFrame | None, out: Path
) -> list[Path]:
    """Per drift series: test accuracy against step for each strategy with its interval band
    over seeds, and the sequential model's accuracy on step 0 after each step (forgetting)."""
    if accuracy is None or accuracy.empty:
        return []
    paths = []
    for (study, model), frame in accuracy.groupby(["study", "model"], sort=True):
        fig = Figure(figsize=(10, 4), dpi=DPI)
        left, right = fig.subplots(1, 2)
        for strategy, group in frame[~frame["strategy"].eq("forgetting")].groupby("strategy"):
            _band(left, group, "step", str(strategy))
        left.set_xticks(sorted(frame["step"].unique()))
        left.set_xlabel("drift step")
        left.set_ylabel("test accuracy on the step")
        left.legend(fontsize=8)
        rows = forgotten if forgotten is not None else pd.DataFrame()
        rows = rows[rows["study"].eq(study) & rows["model"].eq(model)] if len(rows) else rows
        if len(rows):
            band = rows.rename(
                columns={"step0_acc": "test_acc", "acc_low": "ci_low", "acc_high": "ci_high"}
            )
            _band(right, band, "step", "sequential model on step 0")
            right.legend(fontsize=8)
        right.set_xticks(sorted(frame["step"].unique()))
        right.set_xlabel("drift step trained at")
        right.set_ylabel("test accuracy on step 0")
        fig.suptitle(f"{study}, {model}: drift", fontsize=10)
        paths.append(_save(fig, out / f"{slug('drift', study, model)}.png"))
    return paths
