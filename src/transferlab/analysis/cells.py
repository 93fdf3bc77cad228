"""The cell table: every fine-tuned arm against the scratch arm of its target setting, paired
by seed, with the swept optimisation settings chosen per arm on validation (see
analysis.keys for what a setting, an arm and a cell are, and analysis.selection for the rule).

Records that would make a cell ambiguous are set aside and listed, never resolved silently: two
records of one arm, configuration and seed with different run ids are a *conflict* (neither
enters a number); the same run recorded twice is a *duplicate* (the later record counts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from transferlab.analysis.judge import judge
from transferlab.analysis.keys import (
    ARM,
    ARM_KEYS,
    HPARAMS,
    SCRATCH,
    SETTING,
    STATUS_COUNTS,
    TARGET_STAGES,
)
from transferlab.analysis.paired import DEFAULT_TEST, paired_tests
from transferlab.analysis.selection import DEFAULT_RULE, PerSeedValidation, Selection
from transferlab.analysis.stats import CONFIDENCE, group_rows, grouped_mean_ci

#: Test metrics compared per cell beside accuracy (lower is better for both).
CALIBRATION = ("test_ece", "test_nll")
#: Column suffixes of a change and its interval (d_ece, d_ece_low, d_ece_high).
CI_SUFFIXES = ("", "_low", "_high")

_ABSENT = "<unset>"
#: Per-arm selection counts carried into the cell table as ft_<name> and scratch_<name>.
ARM_SUMMARY = ("seeds", "incomplete", "all_diverged")


@dataclass
class CellAnalysis:
    """Everything derived from the cell comparison.

    cells: one row per cell; pairs: one row per (cell, seed) pair of selected runs;
    selected: the selected run of every arm and seed (scratch included); selection: every
    configuration considered per arm with its validation score and how many seeds chose it;
    problems: failed, diverged, duplicate and conflicting runs.
    """

    cells: pd.DataFrame
    pairs: pd.DataFrame
    selected: pd.DataFrame
    selection: pd.DataFrame
    problems: pd.DataFrame


def _show(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def variant_labels(keys: pd.Series) -> pd.Series:
    """Readable labels of canonical settings strings: only the settings that vary among them,
    e.g. ``optimizer._target_=torch.optim.SGD``; empty where nothing varies."""
    parsed = {u: (json.loads(u) if u else {}) for u in keys.dropna().unique()}
    names = sorted(set().union(*parsed.values())) if parsed else []
    varying = [k for k in names if len({_show(d.get(k, _ABSENT)) for d in parsed.values()}) > 1]
    labels = {
        u: "; ".join(f"{k}={_show(d.get(k, _ABSENT))}" for k in varying) for u, d in parsed.items()
    }
    return keys.map(labels).fillna("")


def target_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Target-stage runs with their arm: `source` names it (scratch for the baseline), and
    `variant` / `source_variant` hold the other settings that vary in their study."""
    runs = df[df["stage"].isin(TARGET_STAGES) & df["init"].notna()].copy()
    runs.loc[runs["init"].eq(SCRATCH), "source"] = SCRATCH
    runs["source"] = runs["source"].fillna("unknown source")
    runs["variant"] = ""
    runs["source_variant"] = ""
    for _, study in runs.groupby("study", sort=False):
        runs.loc[study.index, "variant"] = variant_labels(study["variant_key"])
        ft = study[~study["source"].eq(SCRATCH)]
        runs.loc[ft.index, "source_variant"] = variant_labels(ft["source_variant_key"])
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


def set_aside(runs: pd.DataFrame, hparams: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs that count, runs set aside with a reason): conflicts and duplicates."""
    key = ARM + list(hparams) + ["seed"]
    done = runs["status"].eq("completed")
    ids = runs[done].groupby(key, dropna=False)["run_id"].transform("nunique")
    conflict = pd.Series(False, index=runs.index)
    conflict[ids.index] = ids.gt(1)
    conflicts = runs[conflict].assign(
        status="conflict",
        error="another completed record has the same cell, settings and seed but another run "
        "id; neither enters a number",
    )
    runs = runs[~conflict]
    # completed runs last, then by finish time: "the later record" prefers a completed one
    order = runs.assign(_done=runs["status"].eq("completed"))
    runs = runs.loc[order.sort_values(["_done", "finished_at"], kind="stable").index]
    repeated = runs.duplicated(key, keep="last")
    duplicates = runs[repeated].assign(
        status="duplicate",
        error="a later record has the same cell, settings and seed; that one is used",
    )
    return runs[~repeated], pd.concat([conflicts, duplicates])


def _pairs(selected: pd.DataFrame, hparams: tuple[str, ...]) -> pd.DataFrame:
    """Selected fine-tuned runs joined with the selected scratch run of their setting and seed."""
    cols = [*ARM, "seed", "test_acc", *CALIBRATION, "val_acc", "val_curve", *hparams, "run_id"]
    is_scratch = selected["source"].eq(SCRATCH)
    ft = selected.loc[~is_scratch, cols]
    sc = selected.loc[is_scratch, cols].drop(columns=ARM_KEYS)
    return (
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
        "zero_pairs",
        "note",
        "ft_acc",
        "scratch_acc",
    ]
    if pairs.empty:
        changes = [f"d_{m.removeprefix('test_')}{e}" for m in CALIBRATION for e in CI_SUFFIXES]
        return pd.DataFrame(columns=[*cols, *changes])
    paired = pairs.assign(diff=pairs["ft_test_acc"] - pairs["scratch_test_acc"])
    keys, members = group_rows(paired, ARM, sort=False)
    diffs = [paired["diff"].to_numpy()[m] for m in members]
    results = paired_tests(diffs, test=test, confidence=confidence)
    means = paired.groupby(ARM, dropna=False, sort=False)[
        ["ft_test_acc", "scratch_test_acc"]
    ].mean()
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
            "zero_pairs": r.zero_pairs,
            "note": r.note,
            "ft_acc": ft,
            "scratch_acc": sc,
        }
        for k, r, ft, sc in zip(keys, results, means["ft_test_acc"], means["scratch_test_acc"])
    ]
    stats = pd.DataFrame(rows, columns=cols)
    return stats.merge(_calibration_changes(pairs, confidence), on=ARM, how="left")


def _calibration_changes(pairs: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Per cell, the mean paired change of test ECE and NLL (fine-tuned minus scratch; below
    zero is better calibrated) with its t-interval, beside the accuracy gain."""
    out = pairs[ARM].drop_duplicates()
    for metric in CALIBRATION:
        change = pairs[f"ft_{metric}"] - pairs[f"scratch_{metric}"]
        summary = grouped_mean_ci(change.groupby([pairs[k] for k in ARM], dropna=False), confidence)
        name = metric.removeprefix("test_")
        summary = summary.rename(
            columns={c: f"d_{name}{e}" for c, e in zip(("mean", "ci_low", "ci_high"), CI_SUFFIXES)}
        ).drop(columns="count")
        out = out.merge(summary.reset_index(), on=ARM, how="left")
    return out


def _cells(
    runs: pd.DataFrame,
    ft: pd.DataFrame,
    sc: pd.DataFrame,
    stats: pd.DataFrame,
    arms: pd.DataFrame,
    hparams: tuple[str, ...],
) -> pd.DataFrame:
    """One row per fine-tuned arm: status counts of both arms, the paired statistics, the
    hyper-parameters each arm's seeds chose most often (with how many chose them) and the seeds
    selected or left out (see analysis.selection)."""
    counts = _status_counts(runs)
    is_scratch = counts["source"].eq(SCRATCH)
    ft_counts = counts[~is_scratch].rename(columns={s: f"ft_{s}" for s in STATUS_COUNTS})
    sc_counts = counts[is_scratch].drop(columns=ARM_KEYS)
    sc_counts = sc_counts.rename(columns={s: f"scratch_{s}" for s in STATUS_COUNTS})
    cells = ft_counts.merge(sc_counts, on=SETTING, how="left")
    for s in STATUS_COUNTS:
        cells[f"scratch_{s}"] = cells[f"scratch_{s}"].fillna(0).astype(int)
    cells = cells.merge(stats, on=ARM, how="left")
    cells["n_pairs"] = cells["n_pairs"].fillna(0).astype(int)
    cells["min_p"] = cells["min_p"].fillna(1.0)
    cells["note"] = cells["note"].fillna("")
    is_scratch_arm = arms["source"].eq(SCRATCH)
    for arm, frame, chosen in (
        ("ft", ft, arms[~is_scratch_arm]),
        ("scratch", sc, arms[is_scratch_arm]),
    ):
        keys = ARM if arm == "ft" else SETTING
        info = frame.groupby(keys, dropna=False).agg(
            **{f"{arm}_val_protocol": ("val_protocol", "first")},
            **{f"{arm}_val_acc": ("val_acc", "mean")},
        )
        summary = chosen[
            [*keys, *ARM_SUMMARY, *(c for h in hparams for c in (h, f"{h}_mode_seeds"))]
        ]
        summary = summary.rename(columns={c: f"{arm}_{c}" for c in summary if c not in keys})
        cells = cells.merge(info.reset_index(), on=keys, how="left")
        cells = cells.merge(summary, on=keys, how="left")
    counts = [f"{arm}_{c}" for arm in ("ft", "scratch") for c in ARM_SUMMARY]
    counts += [f"{arm}_{h}_mode_seeds" for arm in ("ft", "scratch") for h in hparams]
    cells[counts] = cells[counts].fillna(0).astype(int)
    return cells


def _with_edges(cells: pd.DataFrame, arms: pd.DataFrame) -> pd.DataFrame:
    """`ft_edge` and `scratch_edge`: the swept settings most of each arm's seeds chose at an
    edge of its grid; `edge_risk`: the cell's flag is one such a choice could overturn."""
    scratch = arms["source"].eq(SCRATCH)
    ft = arms.loc[~scratch, [*ARM, "edge"]].rename(columns={"edge": "ft_edge"})
    sc = arms.loc[scratch, [*SETTING, "edge"]].rename(columns={"edge": "scratch_edge"})
    cells = cells.merge(ft, on=ARM, how="left").merge(sc, on=SETTING, how="left")
    cells = cells.fillna({"ft_edge": "", "scratch_edge": ""})
    # A better value beyond the edge could overturn a flag only in one direction: a better
    # fine-tuned arm can undo negative transfer, a better baseline can undo positive transfer.
    cells["edge_risk"] = (cells["flag"].eq("negative") & cells["ft_edge"].ne("")) | (
        cells["flag"].eq("positive") & cells["scratch_edge"].ne("")
    )
    return cells


def in_cells(frame: pd.DataFrame) -> pd.Series:
    """Rows that can form a cell: a target stage with labelled target examples (a null size:
    the whole pool), and not a drift chain's evaluation (the static strategy and forgetting,
    which `analysis.drift` compares)."""
    labelled = frame["target_size"].ne(0).fillna(True).astype(bool)
    if "drift_step" not in frame:
        return labelled
    evaluation = frame["stage"].eq("eval") & frame["drift_step"].notna()
    return labelled & ~evaluation.astype(bool)


def build_cells(
    df: pd.DataFrame,
    *,
    correction: str = "bh",
    alpha: float = 0.05,
    test: str = DEFAULT_TEST,
    confidence: float = CONFIDENCE,
    hparams: tuple[str, ...] = HPARAMS,
    rule: PerSeedValidation = DEFAULT_RULE,
) -> CellAnalysis:
    """Compare every fine-tuned arm with its scratch baseline (see the module docstring)."""
    runs = target_runs(df)
    hparams = tuple(h for h in hparams if h in runs.columns)
    runs, aside = set_aside(runs, hparams)
    selection: Selection = rule.select(runs, hparams)
    done = runs[runs["status"].eq("completed")]
    selected = done.merge(selection.picks, on=[*ARM, "seed", *hparams], how="inner")
    # a target without a labelled example (unsupervised adaptation) has no scratch baseline, a
    # drift evaluation is compared in analysis.drift: their arms are selected, but no cell
    labelled = selected[in_cells(selected)]
    arms = selection.arms[in_cells(selection.arms)]
    pairs = _pairs(labelled, hparams)
    is_scratch = labelled["source"].eq(SCRATCH)
    cells = _cells(
        runs[in_cells(runs)],
        labelled[~is_scratch],
        labelled[is_scratch],
        _cell_stats(pairs, test, confidence),
        arms,
        hparams,
    )
    cells = judge(cells, correction, alpha)
    cells["confidence"] = confidence
    cells = _with_edges(cells, arms)
    cells["selection"] = rule.name
    cells = cells.sort_values(ARM, kind="stable", na_position="last").reset_index(drop=True)
    problem_cols = [*ARM, "seed", *hparams, "status", "error", "run_id"]
    problems = pd.concat(
        [runs.loc[~runs["status"].eq("completed"), problem_cols], aside[problem_cols]]
    )
    return CellAnalysis(
        cells=cells,
        pairs=pairs,
        selected=selected,
        selection=selection.configs,
        problems=problems.reset_index(drop=True),
    )
