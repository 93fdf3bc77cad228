"""Statistics helpers: corrections, IQM, ranks (paired tests: test_analysis_paired.py; the
seed bootstrap of IQM and probability of improvement: test_analysis_seed_bootstrap.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from transferlab.analysis.stats import (
    adjust_pvalues,
    group_rows,
    mean_ci,
    paired_bootstrap_ci,
    permutation_p,
    rank_correlations,
)


def test_corrections_match_definitions():
    p = np.array([0.01, 0.04, 0.03, 0.2, np.nan])
    # Holm: sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1, running max
    assert adjust_pvalues(p, "holm")[:4] == pytest.approx([0.04, 0.09, 0.09, 0.2])
    # BH: p_(i) m / i, running min from the top: 0.04, 0.0533, 0.0533, 0.2
    assert adjust_pvalues(p, "bh")[:4] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert np.isnan(adjust_pvalues(p, "bh")[4])
    with pytest.raises(ValueError, match="valid choices"):
        adjust_pvalues(p, "bonferroni")


def test_mean_ci_and_rank_correlations():
    mean, lo, hi = mean_ci(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0 and lo < 2.0 < hi
    assert np.isnan(mean_ci(np.array([1.0]))[1])
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = x + 0.3 * rng.normal(size=12)
    out = rank_correlations(x, y, n_resamples=300)
    assert out["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert out["kendall"] == pytest.approx(stats.kendalltau(x, y).statistic)
    assert out["kendall_low"] <= out["kendall"] <= out["kendall_high"]
    assert np.isnan(rank_correlations([1, 2], [2, 1])["kendall"])


def test_vectorised_bootstrap_statistics_agree_with_scipy():
    from transferlab.analysis.stats import ROW_STATISTICS

    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, size=(5, 9)).astype(float)  # ties on purpose
    y = rng.normal(size=(5, 9))
    for i in range(5):
        assert ROW_STATISTICS["kendall"](x[i : i + 1], y[i : i + 1])[0] == pytest.approx(
            stats.kendalltau(x[i], y[i]).statistic
        )
        assert ROW_STATISTICS["spearman"](x[i : i + 1], y[i : i + 1])[0] == pytest.approx(
            stats.spearmanr(x[i], y[i]).statistic
        )
    lo, hi = paired_bootstrap_ci(x[0], y[0], "kendall", n_resamples=200)
    assert -1.0 <= lo <= hi <= 1.0


def test_rank_correlation_p_is_exact_and_small_samples_get_no_number():
    import itertools

    x = [0.3, 0.1, 0.5, 0.2, 0.9, 0.4]
    y = [1.0, 3.0, 2.0, 5.0, 6.0, 4.0]
    out = rank_correlations(x, y, n_resamples=200)
    for name, fn in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        observed = abs(fn(x, y).statistic)
        extreme = [abs(fn(x, p).statistic) >= observed - 1e-12 for p in itertools.permutations(y)]
        assert out[f"{name}_p"] == pytest.approx(np.mean(extreme))  # all 720 pairings
    # five pairs in perfect order: only 2 of the 120 pairings are as extreme
    assert rank_correlations(range(5), range(5))["spearman_p"] == pytest.approx(2 / 120)
    # three pairs in perfect order: 2 of the 6 pairings are as extreme, so p cannot go below 1/3
    for name in ("spearman", "kendall"):
        assert permutation_p(np.arange(3.0), np.arange(3.0), name) == pytest.approx(1 / 3)
    # four pairs: the smallest exact p would be 1/12; no number at all
    small = rank_correlations([1, 2, 3, 4], [1, 2, 3, 4])
    assert small["n"] == 4 and all(np.isnan(v) for k, v in small.items() if k != "n")


@pytest.mark.parametrize("sort", [True, False])
def test_group_rows_are_what_iterating_the_groupby_gives(sort: bool):
    """Keys (missing ones included, as groupby gives them) and row positions, group by group
    in groupby's order, for one key column and for several."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        frame = pd.DataFrame(
            {
                "arm": rng.choice(["a", "b", None], n),
                "size": pd.array(rng.choice([20, 200], n), dtype="Int64"),
                "lr": rng.choice([0.1, np.nan], n),
            }
        )
        frame.loc[rng.random(n) < 0.2, "size"] = pd.NA
        for keys in (["arm"], ["arm", "size", "lr"]):
            names, members = group_rows(frame, keys, sort=sort)
            expected = list(frame.groupby(keys, dropna=False, sort=sort))
            assert len(names) == len(members) == len(expected)
            for name, rows, (key, group) in zip(names, members, expected):
                assert [str(v) for v in name] == [str(v) for v in key]
                assert rows.tolist() == group.index.tolist()
    assert group_rows(frame.iloc[:0], ["arm"], sort=sort) == ([], [])
