"""Study-level intervals that resample seeds jointly (cells of a source share each seed's scratch
run, subset and checkpoint): hand values, and a coverage simulation with known truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from transferlab.analysis.seed_bootstrap import (
    _pooled_iqm,
    expanded_tail,
    nan_iqm,
    seed_bootstrap_improvement,
    seed_bootstrap_iqm,
    seed_counts,
)
from transferlab.analysis.stats import iqm

#: Coverage simulation: studies, target sizes, freeze depths, seeds, resamples per interval.
STUDIES, SIZES, DEPTHS, SEEDS, RESAMPLES = 200, 5, 4, 10, 1000
#: Noise of a seed's source checkpoint (every cell), of a scratch run (the depths of one size
#: share it) and of a fine-tuned run (its own).
CHECKPOINT_SD, SCRATCH_SD, RUN_SD = 0.02, 0.03, 0.02
#: The issue's requirement for a 95% interval.
MIN_COVERAGE = 0.93


def test_nan_iqm_matches_scipy_trim_mean_per_row():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(6, 11))
    rows[1, :4] = np.nan
    rows[2, 3] = np.nan
    for row, got in zip(rows, nan_iqm(rows)):
        assert got == pytest.approx(iqm(row[np.isfinite(row)]))
    assert np.isnan(nan_iqm(np.full((1, 3), np.nan))[0])


def test_a_resample_weighing_the_sorted_values_is_the_iqm_of_its_pool():
    """Each resample's IQM is read off the values sorted once, weighted by how often it drew
    each seed: the IQM of the pool built and sorted explicitly, up to rounding, with missing
    pairs, tied values, seeds drawn many times or not at all, and empty pools."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        cells, seeds = rng.integers(1, 40), rng.integers(1, 12)
        gains = np.round(rng.normal(0, 0.02, size=(cells, seeds)), rng.choice([2, 8]))
        gains[rng.random(gains.shape) < rng.choice([0.0, 0.2, 0.9])] = np.nan
        drawn = rng.integers(0, seeds, size=(30, seeds))
        pools = gains[:, drawn].transpose(1, 0, 2).reshape(len(drawn), -1)
        expected = nan_iqm(pools)
        got = _pooled_iqm(gains, seed_counts(drawn, seeds))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


def test_hand_values_and_missing_seeds():
    gains = np.array(
        [[0.1, 0.12, 0.08, np.nan], [0.2, 0.22, 0.18, 0.21], [0.5, np.nan, np.nan, np.nan]]
    )
    est, lo, hi = seed_bootstrap_iqm(gains[:2], n_resamples=500)
    assert est == pytest.approx(iqm(np.array([0.1, 0.12, 0.08, 0.2, 0.22, 0.18, 0.21])))
    assert lo <= est <= hi
    # a cell with fewer than two seeds does not count
    assert np.isnan(seed_bootstrap_iqm(gains[2:])).all()
    # a seed only a dropped cell had is no cluster: same interval as without its column
    sparse = np.array([[0.2, 0.22, 0.18, np.nan], [np.nan, np.nan, np.nan, 0.5]])
    assert seed_bootstrap_iqm(sparse) == seed_bootstrap_iqm(sparse[:1, :3])
    assert seed_bootstrap_iqm(gains)[0] == seed_bootstrap_iqm(gains[:2])[0]
    # every x against every y of its cell, ties count half: 2 > 1, 2 > 1.5, 1 = 1, 1 < 1.5
    est, lo, hi = seed_bootstrap_improvement(
        np.array([[2.0, 1.0]]), np.array([[1.0, 1.5]]), n_resamples=200
    )
    assert est == pytest.approx(0.625)
    assert 0.0 <= lo <= est <= hi <= 1.0
    # two cells: their mean, a seed missing in one arm of the second
    est, _, _ = seed_bootstrap_improvement(
        np.array([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]]),
        np.array([[1.0, 1.5, np.nan], [0.0, 2.0, np.nan]]),
    )
    assert est == pytest.approx(np.mean([(1 + 1 + 0.5 + 0 + 0 + 0) / 6, 0.5]))


def test_expanded_tail_widens_for_few_seeds_and_vanishes_for_many():
    assert expanded_tail(0.95, 10) < 0.025 / 2
    assert expanded_tail(0.95, 10_000) == pytest.approx(0.025, abs=1e-4)


def _mixture_iqm(means: np.ndarray, sd: float) -> float:
    """The interquartile mean of an equal mixture of normals (the pooled gains' population)."""

    def cdf(x: float) -> float:
        return float(np.mean(stats.norm.cdf((x - means) / sd)))

    lo = optimize.brentq(lambda x: cdf(x) - 0.25, -10, 10)
    hi = optimize.brentq(lambda x: cdf(x) - 0.75, -10, 10)
    a, b = (lo - means) / sd, (hi - means) / sd
    inside = means * (stats.norm.cdf(b) - stats.norm.cdf(a)) + sd * (
        stats.norm.pdf(a) - stats.norm.pdf(b)
    )
    return float(inside.mean() / 0.5)


def _study(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fine-tuned and scratch accuracies (cells x seeds) of one source: SIZES x DEPTHS cells,
    the DEPTHS cells of a size share its scratch run of each seed, every cell shares the seed's
    source checkpoint."""
    checkpoint = rng.normal(0, CHECKPOINT_SD, SEEDS)
    scratch = SCRATCH_MEAN[:, :, None] + rng.normal(0, SCRATCH_SD, (SIZES, 1, SEEDS))
    finetuned = FT_MEAN[:, :, None] + checkpoint + rng.normal(0, RUN_SD, (SIZES, DEPTHS, SEEDS))
    scratch = np.broadcast_to(scratch, finetuned.shape)
    return finetuned.reshape(-1, SEEDS), scratch.reshape(-1, SEEDS)


FT_MEAN = 0.6 + 0.01 * np.arange(DEPTHS)[None, :] + 0.03 * np.arange(SIZES)[:, None]
SCRATCH_MEAN = np.broadcast_to(0.58 + 0.035 * np.arange(SIZES)[:, None], FT_MEAN.shape)


def test_intervals_cover_the_truth_when_cells_share_seeds():
    """IQM and P(improve) intervals cover their population values at least MIN_COVERAGE of the
    time (the stratified bootstrap that resampled each cell alone covered 0.59 and 0.63 here)."""
    gain_sd = np.sqrt(CHECKPOINT_SD**2 + SCRATCH_SD**2 + RUN_SD**2)
    true_iqm = _mixture_iqm((FT_MEAN - SCRATCH_MEAN).ravel(), gain_sd)
    true_improve = np.mean(stats.norm.cdf((FT_MEAN - SCRATCH_MEAN) / gain_sd))
    rng = np.random.default_rng(1)
    covered = np.zeros(2)
    for i in range(STUDIES):
        finetuned, scratch = _study(rng)
        _, lo, hi = seed_bootstrap_iqm(finetuned - scratch, n_resamples=RESAMPLES, seed=i)
        covered[0] += lo <= true_iqm <= hi
        _, lo, hi = seed_bootstrap_improvement(finetuned, scratch, n_resamples=RESAMPLES, seed=i)
        covered[1] += lo <= true_improve <= hi
    coverage = covered / STUDIES
    print(
        f"coverage of 95% intervals over {STUDIES} studies: IQM {coverage[0]:.3f}, "
        f"P(improve) {coverage[1]:.3f}"
    )
    assert coverage.min() >= MIN_COVERAGE, coverage
