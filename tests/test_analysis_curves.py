"""Learning curves, gain crossings, effective data transferred, best depth, convergence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from helpers.simulate import SimulatedStudy, scratch_accuracy, simulate_records

from transferlab.analysis import analyze_frame
from transferlab.analysis.curves import effective_data, effective_size, effective_sizes
from transferlab.analysis.records import flatten_record, records_frame


def _curves(rows):
    cols = [
        "study",
        "model",
        "target",
        "source",
        "freeze_depth",
        "target_size",
        "examples",
        "n",
        "test_acc",
        "ci_low",
        "ci_high",
        "val_acc",
    ]
    frame = pd.DataFrame([dict(zip(cols, ["s", "m", "t", *r])) for r in rows])
    return frame.assign(variant="", method="", source_variant="")  # nothing else varies


def test_effective_data_is_read_off_the_scratch_curve_in_log_size():
    curves = _curves(
        [
            ("scratch", 0, 10, 10, 3, 0.5, 0, 0, 0.5),
            ("scratch", 0, 100, 100, 3, 0.7, 0, 0, 0.7),
            ("scratch", 0, 1000, 1000, 3, 0.9, 0, 0, 0.9),
            ("src", 0, 10, 10, 3, 0.6, 0, 0, 0.6),  # halfway in log: sqrt(10 * 100)
            ("src", 0, 100, 100, 3, 0.95, 0, 0, 0.95),  # above the curve
            ("src", 0, 1000, 1000, 3, 0.4, 0, 0, 0.4),  # below the curve
        ]
    )
    eff = effective_data(curves).set_index("target_size")
    assert eff.loc[10, "d_e"] == pytest.approx(math.sqrt(1000))
    assert eff.loc[10, "d_t"] == pytest.approx(math.sqrt(1000) - 10)
    assert np.isnan(eff.loc[100, "d_e"]) and "above" in eff.loc[100, "note"]
    assert np.isnan(eff.loc[1000, "d_e"]) and "below" in eff.loc[1000, "note"]


def test_many_curves_read_at_once_equal_each_curve_read_alone():
    """The bootstrap reads thousands of resampled scratch curves on arrays: every reading is
    the one-at-a-time reading, bit for bit, on curves with plateaus, dips, ties with the value
    read, sizes out of order or unusable, and sizes some resamples miss (NaN)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        width, reads, rows = rng.integers(1, 7), rng.integers(1, 5), rng.integers(1, 20)
        xs = rng.permutation([7.0, 20, 50, 100, 200, 1000])[:width]
        xs[rng.random(width) < 0.1] = rng.choice([np.nan, 0.0])
        levels = np.round(rng.random(8), 1)  # few distinct values: plateaus and exact ties
        accs = rng.choice(levels, size=(rows, width))
        accs[rng.random((rows, width)) < 0.05] = np.nan
        acc = rng.choice(np.r_[levels, np.nan, 1.5, -1.0], size=(rows, reads))
        alone = [[effective_size(a, xs, accs[r])[0] for a in acc[r]] for r in range(rows)]
        np.testing.assert_array_equal(effective_sizes(acc, xs, accs), np.array(alone))


def test_a_reading_is_np_interps_over_the_strictly_increasing_curve():
    """In log size, over the monotone curve's strictly increasing points (a plateau reads as
    its first size), to rounding: `np.interp` may round otherwise (fused multiply-adds). Read
    at every point of the curve (ties, the ends) and between them."""
    rng = np.random.default_rng(1)
    xs = np.array([7.0, 20, 50, 100, 200, 1000])
    for _ in range(300):
        accs = rng.choice(np.round(rng.random(6), 1), size=6)
        mono = np.maximum.accumulate(accs)
        first = np.r_[True, np.diff(mono) > 0]
        if first.sum() < 2:
            continue
        for acc in np.r_[np.unique(mono), rng.uniform(mono[0], mono[-1], size=3)]:
            expected = np.exp(np.interp(acc, mono[first], np.log(xs[first])))
            assert effective_size(acc, xs, accs) == (pytest.approx(expected, rel=1e-12), "")


def _study(gain, **kw):
    spec = SimulatedStudy(
        sources={"src": 0.0}, gain=gain, seeds=8, noise_sd=0.005, seed_sd=0.005, **kw
    )
    return analyze_frame(
        records_frame(flatten_record(r) for r in simulate_records(spec)), n_resamples=200
    )


def test_gain_crossing_and_learning_curves():
    # the source helps small targets and hurts large ones: +0.1 at 20, 0 at ~100, -0.1 at 500
    def gain(model, source, target, size, depth):
        return -0.1 * math.log(size / 100) / math.log(5)

    res = _study(gain, target_sizes=(20, 500), freeze_depths=(0,))
    crossing = res["crossings"].iloc[0]
    assert crossing["crossing_size"] == pytest.approx(100, rel=0.25)
    assert "positive to negative" in crossing["note"] and crossing["significant"]
    curves = res["curves"]
    scratch = curves[curves["source"].eq("scratch")].set_index("target_size")
    assert scratch.loc[20, "test_acc"] == pytest.approx(scratch_accuracy(20, 10), abs=0.01)
    assert (curves["ci_low"] <= curves["test_acc"]).all()
    assert (curves["test_acc"] <= curves["ci_high"]).all()


def test_best_depth_is_chosen_on_validation_and_convergence_is_faster_when_fine_tuning():
    def gain(model, source, target, size, depth):
        return {0: 0.02, 1: 0.08, 3: -0.05}[depth]

    res = _study(gain, target_sizes=(100,), freeze_depths=(0, 1, 3))
    best = res["best_depth"].iloc[0]
    assert best["best_depth"] == 1 and best["depths"] == "0 1 3"
    conv = res["convergence"]
    assert len(conv) == 3
    good = conv[conv["freeze_depth"].eq(1)].iloc[0]
    assert good["ft_epochs"] < good["scratch_epochs"] and good["difference"] < 0
    bad = conv[conv["freeze_depth"].eq(3)].iloc[0]
    assert bad["ft_never"] == bad["n"]  # below scratch's final accuracy: never reaches it
