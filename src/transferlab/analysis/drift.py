"""Drift over time (`experiment=drift`): accuracy against step per strategy, where transfer
stops helping, forgetting, and how the measured shift relates to the gain across steps.

A drift study's records are target runs at each step (`init=source`, `scratch`, `previous`)
and evaluations (`transferlab-eval --drift`): step 0's model from the source tested on every
later step (the static strategy) and each sequential step's model tested on step 0. Step 0 is
one run for three strategies (source, sequential and static all start there). Per strategy,
step and seed the learning rate is chosen on validation (the step's own, or for an
evaluation that of the run evaluated); test accuracy played no part.

* `drift`: mean test accuracy per strategy and step, with its interval over seeds;
* `drift_gain`: each strategy against scratch at each step, paired by seed (q across the
  study's steps and strategies); `stops_helping` names the first step from which a strategy
  is never again significantly better than scratch;
* `forgetting`: the sequential model's accuracy on step 0's test set after each step, and its
  paired drop from step 0's own;
* `drift_shift` (with the domain shift analysis): the rank correlation across steps of each
  measured distance (source to the step's target) with the mean gain of fine-tuning from the
  source, permutation p exact over every ordering up to 7 steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from transferlab.analysis.paired import DEFAULT_TEST, paired_tests
from transferlab.analysis.stats import CONFIDENCE, mean_ci, q_per_study, rank_correlations

#: The strategies, as the report names them.
STATIC, SOURCE, SEQUENTIAL, SCRATCH = "static", "source", "sequential", "scratch"
STRATEGIES = (STATIC, SOURCE, SEQUENTIAL, SCRATCH)
#: What one drift series is keyed on (besides strategy, step and seed).
SERIES = ["study", "model"]
#: A forgetting row: a sequential step's model tested on step 0.
FORGETTING = "forgetting"


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    """Completed drift runs, each with the strategy (or `forgetting`) it stands for and the
    step whose test set it was tested on; step 0's run from the source stands for three."""
    runs = df[df["drift_step"].notna() & df["status"].eq("completed")]
    target, evaluation = runs["stage"].eq("target"), runs["stage"].eq("eval")
    parts = [
        runs[target & runs["init"].eq("source")].assign(strategy=SOURCE),
        runs[target & runs["init"].eq("scratch")].assign(strategy=SCRATCH),
        runs[target & runs["init"].eq("previous")].assign(strategy=SEQUENTIAL),
        runs[target & runs["init"].eq("source") & runs["drift_step"].eq(0)].assign(
            strategy=SEQUENTIAL
        ),
        runs[target & runs["init"].eq("source") & runs["drift_step"].eq(0)].assign(strategy=STATIC),
        runs[evaluation & runs["init"].eq("source") & runs["drift_step"].eq(0)].assign(
            strategy=STATIC
        ),
        runs[evaluation & runs["init"].eq("previous")].assign(strategy=FORGETTING),
    ]
    out = pd.concat(parts, ignore_index=True)
    # a forgetting row is placed at the step its model trained at, tested on step 0
    out["step"] = np.where(
        out["strategy"].eq(FORGETTING), out["drift_step"], out["drift_on_step"]
    ).astype(int)
    return out


def select_drift_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Per series, strategy, step and seed: the run whose learning rate has the best
    validation accuracy (ties: lower validation NLL, then the smaller rate)."""
    runs = _labelled(df) if "drift_step" in df else pd.DataFrame()
    if runs.empty:
        return runs
    order = runs.sort_values(["val_acc", "val_nll", "lr"], ascending=[False, True, True])
    keys = [*SERIES, "strategy", "step", "seed"]
    return order.drop_duplicates(keys).sort_values(keys).reset_index(drop=True)


def accuracy_by_step(selected: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Mean test accuracy per series, strategy and step, with its interval over seeds."""
    trained = selected[selected["stage"].eq("target")]
    names = trained.groupby([*SERIES, "step"])["target"].first()  # each step's dataset
    rows = []
    strategies = selected[selected["strategy"].isin(STRATEGIES)]  # forgetting: its own table
    for key, group in strategies.groupby([*SERIES, "strategy", "step"], sort=True):
        mean, low, high = mean_ci(group["test_acc"].to_numpy(float), confidence)
        rows.append(
            dict(zip([*SERIES, "strategy", "step"], key))
            | {"target": names.get((key[0], key[1], key[3])), "n_seeds": len(group)}
            | {"test_acc": mean, "ci_low": low, "ci_high": high}
        )
    return pd.DataFrame(rows)


def _paired(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per series, step and seed: a's test accuracy minus b's."""
    keys = [*SERIES, "step", "seed"]
    joined = a[[*keys, "test_acc"]].merge(b[[*keys, "test_acc"]], on=keys, suffixes=("", "_b"))
    return joined.assign(diff=joined["test_acc"] - joined["test_acc_b"])


def gain_by_step(
    selected: pd.DataFrame,
    *,
    correction: str = "bh",
    alpha: float = 0.05,
    test: str = DEFAULT_TEST,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """Each strategy against scratch per step, paired by seed, and the step from which it
    stops helping (see the module docstring)."""
    scratch = selected[selected["strategy"].eq(SCRATCH)]
    frames = [
        _paired(selected[selected["strategy"].eq(s)], scratch).assign(strategy=s)
        for s in (STATIC, SOURCE, SEQUENTIAL)
    ]
    diffs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if diffs.empty:
        return pd.DataFrame()
    groups = list(diffs.groupby([*SERIES, "strategy", "step"], sort=True))
    results = paired_tests(
        [g["diff"].to_numpy() for _, g in groups], test=test, confidence=confidence
    )
    table = pd.DataFrame(
        [
            dict(zip([*SERIES, "strategy", "step"], key))
            | {"n_pairs": r.n, "gain": r.mean, "ci_low": r.ci_low, "ci_high": r.ci_high}
            | {"p": r.p, "note": r.note}
            for (key, _), r in zip(groups, results)
        ]
    )
    table = q_per_study(table, "p", "q", correction)
    better = table["q"].lt(alpha) & table["gain"].gt(0)
    worse = table["q"].lt(alpha) & table["gain"].lt(0)
    table["vs_scratch"] = np.select([better, worse], ["better", "worse"], "inconclusive")
    table["stops_helping"] = _stops_helping(table)
    return table


def _stops_helping(table: pd.DataFrame) -> pd.Series:
    """Per row, the first step of its strategy from which no later step is significantly
    better than scratch (NaN when the last step still is)."""
    out = pd.Series(np.nan, index=table.index)
    for _, rows in table.groupby([*SERIES, "strategy"], sort=False):
        helps = rows.sort_values("step")
        better = helps["vs_scratch"].eq("better").to_numpy()
        last = np.flatnonzero(better)
        steps = helps["step"].to_numpy()
        stop = (
            steps[0]
            if last.size == 0
            else (steps[last[-1] + 1] if last[-1] + 1 < len(steps) else np.nan)
        )
        out.loc[rows.index] = stop
    return out


def forgetting(selected: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """The sequential model's accuracy on step 0's test set after each step, and its paired
    drop from step 0's own accuracy there (above 0: forgotten)."""
    later = selected[selected["strategy"].eq(FORGETTING)]
    first = selected[selected["strategy"].eq(SOURCE) & selected["step"].eq(0)]
    if later.empty or first.empty:
        return pd.DataFrame()
    keys = [*SERIES, "seed"]
    joined = later.merge(first[[*keys, "test_acc"]], on=keys, suffixes=("", "_step0"))
    rows = []
    for key, group in joined.groupby([*SERIES, "step"], sort=True):
        acc = mean_ci(group["test_acc"].to_numpy(float), confidence)
        drop = mean_ci((group["test_acc_step0"] - group["test_acc"]).to_numpy(float), confidence)
        rows.append(
            dict(zip([*SERIES, "step"], key))
            | {"n_seeds": len(group), "step0_acc": acc[0], "acc_low": acc[1], "acc_high": acc[2]}
            | {"forgotten": drop[0], "forgotten_low": drop[1], "forgotten_high": drop[2]}
        )
    return pd.DataFrame(rows)


def shift_against_gain(
    shift: pd.DataFrame,
    gains: pd.DataFrame,
    accuracy: pd.DataFrame,
    correction: str = "bh",
    **kwargs: Any,
) -> pd.DataFrame:
    """Rank correlation across steps of each measured distance between the source and the
    step's target with the mean gain of fine-tuning from the source (see the module
    docstring); empty without distances."""
    if shift is None or shift.empty or gains.empty:
        return pd.DataFrame()
    source = gains[gains["strategy"].eq(SOURCE)].merge(
        accuracy[accuracy["strategy"].eq(SOURCE)][[*SERIES, "step", "target"]],
        on=[*SERIES, "step"],
    )
    ok = shift[shift["status"].eq("ok")]
    joined = source.merge(ok, on=[*SERIES, "target"], how="inner")
    measures = [c for c in ("mmd2", "proxy_a", "frechet", "otdd") if c in joined]
    rows = []
    for key, group in joined.groupby([*SERIES, "space"], sort=True):
        for name in measures:
            stats = rank_correlations(group[name], group["gain"], **kwargs)
            rows.append(dict(zip([*SERIES, "space"], key)) | {"distance": name, **stats})
    table = pd.DataFrame(rows)
    return q_per_study(table, "spearman_p", "spearman_q", correction)  # spaces, distances
