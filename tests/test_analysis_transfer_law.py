"""The transfer law D_T = k * D_F**alpha (Hernandez et al. 2021) recovered from simulated runs
whose fine-tuned accuracy is, by construction, the scratch accuracy at D_F + k * D_F**alpha
examples; and the fits that cannot be made honestly say so."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from transferlab.analysis.transfer_law import MIN_SIZES, transfer_law

SIZES = [10, 20, 40, 80, 160, 320, 640, 1280]
SETTING = {"study": "s", "model": "m", "target": "digits", "variant": ""}


def _scratch_acc(n: np.ndarray) -> np.ndarray:
    return 0.1 + 0.1 * np.log(n)


#: Share of a target size trained on (the rest validates): D_F is what was trained on.
TRAINED = 0.8


def _runs(alpha: float, k: float, sizes: list[int], seeds: int, noise: float) -> pd.DataFrame:
    """Runs whose fine-tuned accuracy is the scratch curve's at D_F + k D_F^alpha; each seed
    shifts every run of its own by one draw (what a seed's runs share) and each run adds its
    own noise."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        shared = rng.normal(0, noise)
        for n in sizes:
            d_f = TRAINED * n
            arms = {
                "scratch": _scratch_acc(np.float64(d_f)) + shared,
                "digits": _scratch_acc(d_f + k * np.float64(d_f) ** alpha) + shared,
            }
            for source, acc in arms.items():
                method = None if source == "scratch" else "finetune"
                rows.append(
                    {
                        **SETTING,
                        "source": source,
                        "method": method,
                        "freeze_depth": 0,
                        "source_variant": "",
                        "target_size": n,
                        "seed": seed,
                        "train_examples": d_f,
                        "test_acc": acc + rng.normal(0, noise),
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("alpha", [0.3, 0.7])
def test_the_fitted_exponent_is_the_simulated_one(alpha: float):
    (row,) = transfer_law(_runs(alpha, 3.0, SIZES, 10, 0.002), n_resamples=300).itertuples()
    assert row.alpha == pytest.approx(alpha, abs=0.05)
    assert row.k == pytest.approx(3.0, rel=0.3)  # D_F is the examples trained on, not the size
    assert row.alpha_low < alpha < row.alpha_high and row.alpha_high - row.alpha_low < 0.3
    assert row.r2 > 0.95 and row.sizes >= MIN_SIZES and row.n_seeds == 10
    # the largest sizes lie above the scratch curve: they cannot enter the fit
    assert row.sizes < len(SIZES)


def test_noisier_runs_give_a_wider_interval():
    quiet = transfer_law(_runs(0.5, 3.0, SIZES, 10, 0.002), n_resamples=300).iloc[0]
    noisy = transfer_law(_runs(0.5, 3.0, SIZES, 10, 0.006), n_resamples=300).iloc[0]
    assert noisy.alpha_high - noisy.alpha_low > quiet.alpha_high - quiet.alpha_low


def test_too_few_sizes_with_transfer_cannot_be_fitted():
    # no transfer at all: the fine-tuned curve is the scratch curve, D_T = 0 everywhere
    (row,) = transfer_law(_runs(0.5, 0.0, SIZES, 5, 0.0), n_resamples=50).itertuples()
    assert math.isnan(row.alpha) and math.isnan(row.alpha_low)
    assert row.note.startswith("cannot be fitted")


def test_curves_over_fewer_sizes_than_a_fit_needs_are_not_rows():
    assert transfer_law(_runs(0.5, 3.0, SIZES[: MIN_SIZES - 1], 5, 0.0)).empty


def test_resamples_that_lose_a_size_of_the_fit_leave_no_interval():
    """A size whose D_T > 0 only by noise drops out of many resamples: the interval would
    otherwise mix fits through other sizes, so there is none, and the row says why."""
    runs = _runs(0.5, 0.3, SIZES, 8, 0.02)
    (row,) = transfer_law(runs, n_resamples=300).itertuples()
    assert np.isfinite(row.alpha) and row.fitted_share < 0.99
    assert math.isnan(row.alpha_low) and math.isnan(row.alpha_high)
    assert row.note.startswith("no interval")
