"""The paired tests of a cell: p-values and intervals against scipy and hand cases, the smallest
attainable p and the seeds a flag needs, ties without the permutation slowdown, and the power
and false-flag rate of the default test on simulated studies with tied accuracies."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from helpers.simulate import SimulatedStudy, lone_effect_study, simulate_records
from scipy import stats

from transferlab.analysis.cells import build_cells
from transferlab.analysis.paired import (
    DEFAULT_TEST,
    min_attainable_p,
    paired_test,
    paired_tests,
    seeds_needed,
)
from transferlab.analysis.records import flatten_record, records_frame

D8 = [0.1, 0.12, 0.09, 0.11, 0.1, -0.02, 0.05, 0.07]


def test_default_is_the_paired_t_test_with_its_interval():
    res = paired_test(D8)
    assert DEFAULT_TEST == "t" and res.test == "t"
    ref = stats.ttest_1samp(D8, 0)
    assert res.p == pytest.approx(ref.pvalue)
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(ref.confidence_interval(0.95)))
    assert res.min_p == 0.0


def test_smallest_attainable_p_and_seeds_needed():
    assert min_attainable_p("wilcoxon", 5) == pytest.approx(0.0625)
    assert min_attainable_p("signflip", 10) == pytest.approx(2 / 1024)
    assert min_attainable_p("t", 10) == 0.0
    # 36 cells at alpha 0.05: a lone cell needs 36 * 2 / 2**n < 0.05, so 2**n > 1440: n = 11
    assert seeds_needed("wilcoxon", 36, 0.05) == 11
    assert seeds_needed("t", 36, 0.05) == 2
    # zero differences carry no sign: 10 pairs with 2 ties reach no lower than 8 distinct ones
    tied = [0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    for test in ("wilcoxon", "signflip"):
        result = paired_test(tied, test=test)
        assert result.min_p == pytest.approx(2 / 2**8)
        assert result.p == pytest.approx(result.min_p)  # every non-zero difference positive


def test_wilcoxon_is_exact_with_and_without_ties():
    distinct = [0.1, 0.12, 0.09, 0.11, 0.13, -0.02, 0.05, 0.07]
    exact = stats.wilcoxon(distinct, method="exact").pvalue
    assert paired_test(distinct, test="wilcoxon").p == pytest.approx(exact)
    # ties and a zero: scipy's own choice here is a permutation test over all sign flips
    tied = [0.1, 0.1, 0.2, -0.05, 0.3, 0.1, 0.0, 0.15, -0.1, 0.2]
    expected = stats.wilcoxon(tied, zero_method="pratt").pvalue
    assert paired_test(tied, test="wilcoxon").p == pytest.approx(expected)


def test_tied_cells_are_tested_all_at_once_not_by_scipy_one_cell_at_a_time(monkeypatch):
    """What makes ties fast: 200 tied cells are enumerated together; scipy's per-cell
    permutation test (its choice under ties, about 1000x slower) is never called."""
    rng = np.random.default_rng(0)
    tied = rng.integers(-3, 4, size=(200, 10)) / 100  # accuracies on 100 examples: many ties
    expected = [stats.wilcoxon(row, zero_method="pratt").pvalue for row in tied[:5]]

    def refuse(*args, **kwargs):
        raise AssertionError("scipy's per-cell test called")

    monkeypatch.setattr(stats, "wilcoxon", refuse)
    monkeypatch.setattr(stats, "permutation_test", refuse)
    results = paired_tests(tied, test="wilcoxon")
    assert [r.p for r in results[:5]] == pytest.approx(expected)
    assert len(paired_tests(tied, test="signflip")) == 200


def _classic_hodges_lehmann(d: np.ndarray, confidence: float) -> tuple[float, float]:
    """The textbook interval: sorted Walsh averages cut at the exact signed-rank quantile
    (counted here by enumerating every sign pattern)."""
    n = d.size
    sums = [
        sum(r for r, s in zip(range(1, n + 1), signs) if s)
        for signs in itertools.product((0, 1), repeat=n)
    ]
    cdf = np.cumsum(np.bincount(sums, minlength=n * (n + 1) // 2 + 1)) / 2**n
    c = int(np.searchsorted(cdf, (1 - confidence) / 2, side="right"))
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2)
    return walsh[c - 1], walsh[walsh.size - c]


def test_wilcoxon_interval_is_the_classic_one_without_ties_and_agrees_with_p_with_them():
    rng = np.random.default_rng(3)
    d = rng.normal(0.03, 0.02, size=10)
    res = paired_test(d, test="wilcoxon")
    assert (res.ci_low, res.ci_high) == pytest.approx(_classic_hodges_lehmann(d, 0.95), abs=1e-9)
    # accuracies on 50 examples: zeros and tied magnitudes everywhere; the interval holds 0
    # exactly when the test does not reject (the Walsh-average interval, blind to zeros and
    # ties, disagreed with the p on 13 of these)
    tied = rng.integers(-2, 5, size=(300, 10)) / 50
    results = paired_tests(list(tied), test="wilcoxon")
    agree = [(r.ci_low <= 0 <= r.ci_high) == (r.p > 0.05) for r in results]
    assert all(agree), f"{agree.count(False)} of 300 disagree"


def test_signflip_exact_p_on_three_pairs():
    # 8 sign patterns of [1, 2, 3]: only +++ and --- reach |mean| 2: p = 2/8; 3 pairs: p >= 1/4
    res = paired_test([1.0, 2.0, 3.0], test="signflip")
    assert res.p == pytest.approx(0.25) and res.min_p == pytest.approx(0.25)


@pytest.mark.parametrize("test", ["t", "wilcoxon", "signflip"])
def test_intervals_cover_at_their_level(test):
    # Symmetric noise around 0.05: each interval holds the centre in about 95% of 400 studies.
    rng = np.random.default_rng(0)
    diffs = 0.05 + rng.normal(0, 0.03, size=(400, 10))
    results = paired_tests(list(diffs), test=test)
    covered = np.mean([r.ci_low <= 0.05 <= r.ci_high for r in results])
    assert 0.92 <= covered <= 0.99, covered
    assert all(r.ci_low <= r.mean <= r.ci_high for r in results if test != "wilcoxon")


def _study_cells(effect: float, rng_seed: int, test: str = DEFAULT_TEST) -> pd.DataFrame:
    records = simulate_records(lone_effect_study(effect, rng_seed=rng_seed))
    return build_cells(records_frame(flatten_record(r) for r in records), test=test).cells


def _is_lone(cells: pd.DataFrame) -> pd.Series:
    return cells["source"].eq("near") & cells["target_size"].eq(20) & cells["freeze_depth"].eq(0)


def test_lone_large_effect_is_found_and_null_cells_rarely_flagged():
    # 40 simulated studies of 36 cells at 10 seeds with tied accuracies; one cell +3 SD.
    found, false_flags, null_cells = 0, 0, 0
    for rng_seed in range(40):
        cells = _study_cells(3.0, rng_seed)
        lone = _is_lone(cells)
        assert len(cells) == 36
        found += int(cells.loc[lone, "flag"].iloc[0] == "positive")
        false_flags += int(cells.loc[~lone, "flag"].isin(["positive", "negative"]).sum())
        null_cells += int((~lone).sum())
    assert found / 40 >= 0.8, f"power {found / 40:.2f}"
    assert false_flags / null_cells <= 0.05, f"false flags {false_flags / null_cells:.3f}"


def test_null_studies_flag_at_most_five_percent_of_cells():
    # 20 studies of 36 cells at 10 seeds with tied accuracies and no effect anywhere.
    flagged = sum(
        int(_study_cells(0.0, rng_seed)["flag"].isin(["positive", "negative"]).sum())
        for rng_seed in range(100, 120)
    )
    assert flagged / (20 * 36) <= 0.05, f"false flags {flagged / (20 * 36):.3f}"


def test_rank_test_cannot_flag_a_lone_effect_and_says_how_many_seeds_it_needs():
    cells = _study_cells(3.0, 0, test="wilcoxon")
    lone = cells[_is_lone(cells)].iloc[0]
    assert lone["flag"] == "inconclusive" and lone["alone_q"] >= 0.05
    assert "needs 11 seeds to be flagged alone among 36 cells" in lone["reason"]
    # with every cell as extreme, BH would flag it: the reason says so, not "no effect could"
    assert lone["min_q"] < 0.05 and "only beside other cells as extreme" in lone["reason"]


def test_several_cells_at_the_floor_lift_each_other_under_bh():
    """10 cells with 8 pairs each, every difference positive: each p is the Wilcoxon floor
    2/256, alone its q would be 10 times that (0.078), but BH gives the 10 together q = 2/256,
    so all are flagged, and the report must not say that no cell can be flagged."""
    from transferlab.analysis import analyze_frame
    from transferlab.analysis.findings import findings

    spec = SimulatedStudy(
        sources={f"s{i}": 0.3 for i in range(5)},
        target_sizes=(20, 100),
        freeze_depths=(0,),
        lrs=(1e-3,),
        seeds=8,
        noise_sd=0.01,
        seed_sd=0.0,
    )
    df = records_frame(flatten_record(r) for r in simulate_records(spec))
    results = analyze_frame(df, test="wilcoxon", n_resamples=50, shift=False)
    cells = results["cells"]
    assert len(cells) == 10 and cells["min_p"].eq(2 / 256).all()
    assert cells["alone_q"].gt(0.05).all() and cells["min_q"].lt(0.05).all()
    assert cells["flag"].eq("positive").all()
    assert "No cell can be flagged" not in "\n".join(findings(results))
    # under Holm the first step is m p for every cell: none can be flagged, and the report says so
    holm = analyze_frame(df, test="wilcoxon", correction="holm", n_resamples=50, shift=False)
    assert holm["cells"]["flag"].eq("inconclusive").all()
    assert "No cell can be flagged" in "\n".join(findings(holm))


def test_floors_above_the_exact_range():
    """Above 16 pairs the sign-flip test is Monte Carlo (floor 1/20001, not 2/2^n) and the
    signed-rank test with tied magnitudes is scipy's normal approximation (a floor above 2/2^n);
    each cell's min_p is the p its own test gives with every sign alike."""
    positive = np.linspace(0.01, 0.2, 20)
    flip = paired_test(positive, test="signflip")
    assert flip.min_p == pytest.approx(1 / 20_001) and flip.p == pytest.approx(flip.min_p)
    assert min_attainable_p("signflip", 20) == pytest.approx(1 / 20_001)
    tied = np.repeat([0.01, 0.02, 0.03, 0.04, 0.05], 4)  # 20 pairs, magnitudes tied in fours
    rank = paired_test(tied, test="wilcoxon")
    expected = stats.wilcoxon(tied, method="approx").pvalue
    assert rank.min_p == pytest.approx(expected) and rank.min_p > 2 / 2**20
    assert rank.zero_pairs == 0
    # a family too large for 20000 sign patterns: no number of seeds lets a lone cell through
    assert seeds_needed("signflip", 2000, 0.05) is None


def test_identical_differences_get_no_t_interval_beside_their_undefined_p():
    from transferlab.analysis.paired import paired_test

    res = paired_test([0.05] * 6, test="t")
    assert np.isnan(res.p) and "undefined" in res.note
    assert np.isnan(res.ci_low) and np.isnan(res.ci_high)  # not a zero-width [0.05, 0.05]
