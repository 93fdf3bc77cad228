"""The cell table: per (model, source, target, target size, freeze depth), fine-tuned against
the scratch baseline, paired by seed, with hyper-parameters chosen on validation per arm.

An *arm* is one way of training on one target setting: scratch (per model, target, target
size) or fine-tuning from one source at one freeze depth. Within an arm the swept
optimisation settings (HPARAMS) are chosen by mean validation accuracy over seeds, never on
test; only configurations with the fewest diverged runs are eligible, so a learning rate that
diverged on some seeds cannot win on the survivors (failed runs, an infrastructure matter, do
not count against a configuration).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from transferlab.analysis.stats import CONFIDENCE, adjust_pvalues, paired_tests

#: Swept optimisation settings chosen per arm on validation.
HPARAMS = ("lr", "weight_decay", "batch_size", "epochs")
#: Keys of a target setting shared by both arms (the baseline is matched on these).
SETTING = ["study", "model", "target", "target_size"]
#: Keys of an arm / of a cell.
ARM = [*SETTING, "source", "freeze_depth"]
CELL = ARM
SCRATCH = "scratch"
FLAGS = (
    "negative",
    "positive",
    "inconclusive",
    "too-few-seeds",
    "single-seed",
    "missing-baseline",
    "no-paired-seeds",
    "no-completed-runs",
)
STATUS_COUNTS = ("completed", "failed", "diverged")


@dataclass
class CellAnalysis:
    """Everything derived from the cell comparison.

    cells: one row per cell; pairs: one row per (cell, seed) pair of selected runs;
    selected: the selected runs of every arm (scratch included); selection: every
    configuration considered per arm with its validation score; problems: failed and
    diverged runs.
    """

    cells: pd.DataFrame
    pairs: pd.DataFrame
    selected: pd.DataFrame
    selection: pd.DataFrame
    problems: pd.DataFrame


def target_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Target-stage runs with an arm name in ``source`` (scratch for the baseline)."""
    runs = df[df["stage"].eq("target") & df["init"].notna()].copy()
    runs.loc[runs["init"].eq("scratch"), ["source", "freeze_depth"]] = [SCRATCH, 0]
    runs["source"] = runs["source"].fillna("unknown source")
    return runs


def _status_counts(runs: pd.DataFrame) -> pd.DataFrame:
    counts = (
        runs.groupby(ARM, dropna=False)["status"]
        .value_counts()
        .unstack(fill_value=0)
        .reindex(columns=list(STATUS_COUNTS), fill_value=0)
    )
    counts.columns.name = None
    return counts.reset_index()


def select_hparams(runs: pd.DataFrame, hparams: tuple[str, ...] = HPARAMS) -> pd.DataFrame:
    """Every configuration of every arm with its mean validation accuracy over completed seeds,
    its completed and diverged counts, and `chosen` (the one selected for the arm)."""
    keys = ARM + list(hparams)
    runs = runs.assign(
        _done=runs["status"].eq("completed"), _diverged=runs["status"].eq("diverged")
    )
    runs = runs.assign(
        _val=runs["val_acc"].where(runs["_done"]), _seed=runs["seed"].where(runs["_done"])
    )
    table = (
        runs.groupby(keys, dropna=False, sort=True)
        .agg(
            val_acc=("_val", "mean"), n_seeds=("_seed", "nunique"), n_diverged=("_diverged", "sum")
        )
        .reset_index()
    )
    table["chosen"] = False
    if table.empty:
        return table
    fewest = table.groupby(ARM, dropna=False)["n_diverged"].transform("min")
    eligible = table[table["n_diverged"].eq(fewest) & table["val_acc"].notna()]
    best = (
        eligible.sort_values("val_acc", ascending=False, kind="stable").drop_duplicates(ARM).index
    )
    table.loc[best, "chosen"] = True
    return table


def _cell_stats(pairs: pd.DataFrame, test: str, confidence: float) -> pd.DataFrame:
    """Paired test per cell over its seeds (vectorised over cells)."""
    cols = [
        *ARM,
        "n_pairs",
        "gain",
        "gain_sd",
        "ci_low",
        "ci_high",
        "p",
        "p_t",
        "p_wilcoxon",
        "test",
        "min_p",
        "note",
        "ft_acc",
        "scratch_acc",
    ]
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    groups = pairs.assign(diff=pairs["ft_test_acc"] - pairs["scratch_test_acc"]).groupby(
        ARM, dropna=False, sort=False
    )
    keys, diffs = zip(*((k, g["diff"].to_numpy()) for k, g in groups))
    results = paired_tests(diffs, test=test, confidence=confidence)
    means = groups[["ft_test_acc", "scratch_test_acc"]].mean()
    rows = [
        {
            **dict(zip(ARM, k)),
            "n_pairs": r.n,
            "gain": r.mean,
            "gain_sd": r.sd,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "p": r.p,
            "p_t": r.p_t,
            "p_wilcoxon": r.p_wilcoxon,
            "test": r.test,
            "min_p": r.min_p,
            "note": r.note,
            "ft_acc": ft,
            "scratch_acc": sc,
        }
        for k, r, ft, sc in zip(keys, results, means["ft_test_acc"], means["scratch_test_acc"])
    ]
    return pd.DataFrame(rows, columns=cols)


def _flag(row: pd.Series, alpha: float) -> tuple[str, str]:
    if row["ft_completed"] == 0:
        return "no-completed-runs", "no completed fine-tuned run"
    if row["scratch_completed"] == 0:
        return "missing-baseline", "no completed scratch run on this target setting"
    if row["n_pairs"] == 0:
        return "no-paired-seeds", "fine-tuned and scratch runs share no seed"
    if row["n_pairs"] == 1:
        return "single-seed", "one paired seed: no test is possible"
    if row["min_p"] > alpha:
        return "too-few-seeds", (
            f"{row['n_pairs']} pairs: a two-sided {row['test']} test "
            f"cannot go below p = {row['min_p']:.4g} > alpha = {alpha}"
        )
    if not np.isfinite(row["p"]):
        return "inconclusive", row["note"] or "p-value undefined"
    if row["q"] < alpha:
        return ("negative", "") if row["gain"] < 0 else ("positive", "")
    reason = f"q = {row['q']:.3g} >= alpha = {alpha}"
    if row["min_q"] >= alpha:
        reason += (
            f"; even if every test reached its smallest attainable p ({row['test']}, "
            f"{row['n_pairs']} pairs: {row['min_p']:.3g}) the corrected q would be "
            f"{row['min_q']:.3g}: more seeds needed"
        )
    return "inconclusive", reason


def build_cells(
    df: pd.DataFrame,
    *,
    correction: str = "bh",
    alpha: float = 0.05,
    test: str = "auto",
    confidence: float = CONFIDENCE,
    hparams: tuple[str, ...] = HPARAMS,
) -> CellAnalysis:
    """Compare every fine-tuned cell with its scratch baseline (see the module docstring)."""
    runs = target_runs(df)
    hparams = tuple(h for h in hparams if h in runs.columns)
    # completed runs last, then by finish time: "the later record" prefers a completed one
    order = runs.assign(_done=runs["status"].eq("completed"))
    runs = runs.loc[order.sort_values(["_done", "finished_at"], kind="stable").index]
    # two records of one arm, configuration and seed (a setting outside HPARAMS varied, or two
    # studies merged): the later one counts, the other is listed as a duplicate
    duplicated = runs.duplicated(ARM + list(hparams) + ["seed"], keep="last")
    duplicates = runs[duplicated].assign(
        status="duplicate",
        error="a later record has the same cell, settings and seed; that one is used",
    )
    runs = runs[~duplicated]
    done = runs[runs["status"].eq("completed")]
    selection = select_hparams(runs, hparams)
    chosen = selection.loc[selection["chosen"], ARM + list(hparams)]
    selected = done.merge(chosen, on=ARM + list(hparams), how="inner")

    counts = _status_counts(runs)
    is_scratch = counts["source"].eq(SCRATCH)
    ft_counts = counts[~is_scratch].rename(columns={s: f"ft_{s}" for s in STATUS_COUNTS})
    sc_counts = counts[is_scratch].drop(columns=["source", "freeze_depth"])
    sc_counts = sc_counts.rename(columns={s: f"scratch_{s}" for s in STATUS_COUNTS})

    cols = [*ARM, "seed", "test_acc", "val_acc", "val_curve", *hparams, "run_id"]
    ft = selected.loc[~selected["source"].eq(SCRATCH), cols]
    sc = selected.loc[selected["source"].eq(SCRATCH), cols].drop(columns=["source", "freeze_depth"])
    pairs = (
        ft.add_prefix("ft_")
        .rename(columns={f"ft_{k}": k for k in [*ARM, "seed"]})
        .merge(
            sc.add_prefix("scratch_").rename(
                columns={f"scratch_{k}": k for k in [*SETTING, "seed"]}
            ),
            on=[*SETTING, "seed"],
            how="inner",
        )
    )

    cells = ft_counts.merge(sc_counts, on=SETTING, how="left")
    for s in STATUS_COUNTS:
        cells[f"scratch_{s}"] = cells[f"scratch_{s}"].fillna(0).astype(int)
    cells = cells.merge(_cell_stats(pairs, test, confidence), on=ARM, how="left")
    cells["n_pairs"] = cells["n_pairs"].fillna(0).astype(int)
    cells["min_p"] = cells["min_p"].fillna(1.0)
    cells["note"] = cells["note"].fillna("")
    for arm, frame in (("ft", ft), ("scratch", sc)):
        keys = ARM if arm == "ft" else SETTING
        info = frame.groupby(keys, dropna=False).agg(
            **{f"{arm}_{h}": (h, "first") for h in hparams},
            **{f"{arm}_val_acc": ("val_acc", "mean"), f"{arm}_seeds": ("seed", "nunique")},
        )
        cells = cells.merge(info.reset_index(), on=keys, how="left")
    cells[["ft_seeds", "scratch_seeds"]] = (
        cells[["ft_seeds", "scratch_seeds"]].fillna(0).astype(int)
    )

    # the family is one study's tested cells; min_q is the q each cell would get if every test
    # of the family reached its smallest attainable p
    cells["q"] = np.nan
    cells["min_q"] = np.nan
    for _, family in cells[cells["n_pairs"].ge(2)].groupby("study", sort=False):
        cells.loc[family.index, "q"] = adjust_pvalues(family["p"].to_numpy(), correction)
        cells.loc[family.index, "min_q"] = adjust_pvalues(family["min_p"].to_numpy(), correction)
    # Wang et al.'s negative transfer gap: error with transfer minus error without = -gain
    cells["ntg"] = -cells["gain"]
    cells["ntg_ci_low"], cells["ntg_ci_high"] = -cells["ci_high"], -cells["ci_low"]
    flags = [_flag(row, alpha) for _, row in cells.iterrows()]
    cells["flag"] = [f for f, _ in flags]
    cells["reason"] = [r or n for (_, r), n in zip(flags, cells["note"])]
    cells["correction"] = correction
    cells = cells.sort_values(ARM, kind="stable", na_position="last").reset_index(drop=True)

    problem_cols = [*ARM, "seed", *hparams, "status", "error", "run_id"]
    problems = pd.concat(
        [runs.loc[~runs["status"].eq("completed"), problem_cols], duplicates[problem_cols]]
    )
    return CellAnalysis(
        cells=cells,
        pairs=pairs,
        selected=selected,
        selection=selection,
        problems=problems.reset_index(drop=True),
    )
