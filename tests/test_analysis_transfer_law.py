"""The transfer law D_T = k * D_F**alpha (Hernandez et al. 2021) recovered from simulated runs
whose fine-tuned accuracy is, by construction, the scratch accuracy at D_F + k * D_F**alpha
examples; and the fits that cannot be made honestly say so."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from transferlab.analysis.curves import effective_size
from transferlab.analysis.seed_bootstrap import expanded_interval
from transferlab.analysis.stats import CONFIDENCE
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


def _one_at_a_time(runs: pd.DataFrame, n_resamples: int) -> tuple[np.ndarray, int]:
    """The bootstrap's definition, one resample at a time: each resample's seed-mean curves,
    the fine-tuned means read off the scratch curve, the line through the point estimate's
    sizes (NaN when one of them has no D_T > 0); and the number of seeds."""
    seeds = sorted(set(runs["seed"]))

    def curve(arm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        acc = arm.pivot_table(index="target_size", columns="seed", values="test_acc")
        examples = arm.groupby("target_size")["train_examples"].mean()
        return acc.reindex(columns=seeds).to_numpy(float), examples.to_numpy(float)

    (ft_acc, d_f), (sc_acc, sc_x) = (
        curve(runs[runs["source"].eq(s)]) for s in ("digits", "scratch")
    )

    def d_t(drawn: np.ndarray) -> np.ndarray:
        scratch = np.nanmean(sc_acc[:, drawn], axis=1)
        reads = [effective_size(a, sc_x, scratch)[0] for a in np.nanmean(ft_acc[:, drawn], axis=1)]
        return np.array(reads) - d_f

    point = d_t(np.arange(len(seeds)))
    sizes = np.isfinite(point) & (point > 0)
    rng, draws = np.random.default_rng(0), []
    for _ in range(n_resamples):
        resample = d_t(rng.integers(0, len(seeds), size=len(seeds)))[sizes]
        fitted = (np.isfinite(resample) & (resample > 0)).all()
        x, y = np.log(d_f[sizes]), np.log(np.where(fitted, resample, 1.0))
        draws.append(np.polyfit(x, y, 1)[0] if fitted else math.nan)
    return np.array(draws), len(seeds)


def test_the_bootstrap_reads_every_resample_as_its_definition_with_tied_accuracies():
    """Accuracies are counts over a test set, so seed means tie across sizes and arms, and a
    tie read one rounding off is "above the scratch curve" or at another size: the bootstrap
    on arrays must give exactly the share of fitted resamples and the interval of the
    resample-by-resample definition."""
    runs = _runs(0.5, 3.0, SIZES, 8, 0.02)
    runs["test_acc"] = np.round(runs["test_acc"] * 50) / 50  # a test set of 50 examples
    (row,) = transfer_law(runs, n_resamples=400).itertuples()
    draws, n_seeds = _one_at_a_time(runs, 400)
    assert row.fitted_share == np.isfinite(draws).mean() and 0.5 < row.fitted_share < 1
    low, high = expanded_interval(draws, CONFIDENCE, n_seeds, failed_as_worst=True)
    assert (row.alpha_low, row.alpha_high) == pytest.approx((low, high), rel=1e-9, nan_ok=True)
