"""The drift analysis on planted runs: the step from which transfer stops helping, forgetting,
and the exact permutation p of the shift-gain relation across steps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from transferlab.analysis.drift import (
    accuracy_by_step,
    forgetting,
    gain_by_step,
    select_drift_runs,
    shift_against_gain,
)

STEPS, SEEDS = 6, 10
#: Planted gain of fine-tuning from the source over scratch per step: helps, then stops at 3.
GAINS = [0.30, 0.20, 0.10, 0.0, 0.0, 0.0]


def _row(init: str, stage: str, step: int, on: int, seed: int, acc: float, lr: float) -> dict:
    return {
        "study": "s",
        "model": "m",
        "status": "completed",
        "stage": stage,
        "init": init,
        "drift_step": step,
        "drift_on_step": on,
        "seed": seed,
        "lr": lr,
        "test_acc": acc,
        "val_acc": acc if lr == 0.01 else acc - 0.1,  # validation prefers lr 0.01
        "val_nll": 1.0,
        "target": f"digits+rotate(degrees={18 * on})" if stage == "target" else "x",
    }


def _planted() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(SEEDS):
        for lr in (0.01, 0.1):
            noise = lambda: 0.01 * rng.standard_normal()  # noqa: E731
            for step in range(STEPS):
                base = 0.6 + noise()
                rows.append(_row("scratch", "target", step, step, seed, base, lr))
                rows.append(
                    _row("source", "target", step, step, seed, base + GAINS[step] + noise(), lr)
                )
                if step:
                    rows.append(
                        _row("previous", "target", step, step, seed, base + 0.05 + noise(), lr)
                    )
                    rows.append(_row("source", "eval", 0, step, seed, 0.9 - 0.1 * step, lr))
                    rows.append(_row("previous", "eval", step, 0, seed, 0.9 - 0.05 * step, lr))
    return pd.DataFrame(rows)


def test_transfer_stops_helping_where_the_planted_gain_ends():
    selected = select_drift_runs(_planted())
    assert set(selected["lr"]) == {0.01}  # chosen on validation
    gains = gain_by_step(selected).set_index(["strategy", "step"])
    source = gains.loc["source"]
    assert list(source["vs_scratch"][:3]) == ["better"] * 3
    assert (source["vs_scratch"][3:] == "inconclusive").all()
    assert (source["stops_helping"] == 3).all()
    assert source.loc[0, "gain"] == pytest.approx(0.30, abs=0.02)
    table = accuracy_by_step(selected)
    assert set(table["strategy"]) == {"static", "source", "sequential", "scratch"}
    assert (table.groupby("strategy")["step"].nunique() == STEPS).all()  # step 0 is shared


def test_forgetting_is_the_paired_drop_on_step_zero():
    table = forgetting(select_drift_runs(_planted())).set_index("step")
    step0 = select_drift_runs(_planted()).query("strategy == 'source' and step == 0")
    for step in range(1, STEPS):
        expected = step0["test_acc"].mean() - (0.9 - 0.05 * step)
        assert table.loc[step, "forgotten"] == pytest.approx(expected)


def test_shift_against_gain_has_an_exact_p_over_every_ordering_of_six_steps():
    selected = select_drift_runs(_planted())
    gains, accuracy = gain_by_step(selected), accuracy_by_step(selected)
    shift = pd.DataFrame(
        {
            "study": "s",
            "model": "m",
            "source": "digits",
            "space": "pixel",
            "status": "ok",
            "target": [f"digits+rotate(degrees={18 * k})" for k in range(STEPS)],
            "mmd2": np.arange(STEPS, dtype=float),
            "proxy_a": np.arange(STEPS, dtype=float),
            "frechet": np.arange(STEPS, dtype=float),
            "otdd": np.arange(STEPS, dtype=float),
        }
    )
    table = shift_against_gain(shift, gains, accuracy, n_resamples=100).set_index("distance")
    row = table.loc["mmd2"]
    assert row["n"] == STEPS and row["spearman"] < -0.8  # more shift, less gain
    # exact: a multiple of 1/6! (the statistic's ties aside), not a Monte Carlo estimate
    assert math.isclose(
        row["spearman_p"] * math.factorial(STEPS),
        round(row["spearman_p"] * math.factorial(STEPS)),
        abs_tol=1e-6,
    )
