"""Paired tests of fine-tuned against scratch accuracy over seeds, each with the interval that
matches it, the smallest p-value it can reach, and the seeds a flag would need.

A cell compares n seeds; a study corrects over m cells. A test whose smallest attainable p is
2 / 2**n (Wilcoxon, sign-flip) cannot flag a lone effect once m * 2 / 2**n >= alpha (10 seeds,
more than about 25 cells at alpha 0.05), however large the effect; the paired t-test has no such
floor, so it is the default (docs/analysis.md measures the power of each on simulated studies).

- `t`: paired t-test, t-interval of the mean gain (assumes roughly normal differences).
- `wilcoxon`: signed-rank test, exact with ties and zeros (mid-ranks, all 2**n sign flips at
  once for every cell; scipy runs a permutation test per cell when ties occur, 1000x slower),
  interval of the pseudo-median (Hodges-Lehmann) by inverting that same test, so interval and
  p agree on zeros and ties.
- `signflip`: exact sign-flip permutation test of the mean (Monte Carlo beyond
  `SIGNFLIP_EXACT_MAX` pairs), interval by inverting it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from transferlab.analysis.stats import CONFIDENCE

#: Differences whose SD is at most this are identical: accuracies are counts over at most
#: millions of examples, so a smaller spread is floating-point rounding of one value, whose
#: t-statistic would be huge and its p spuriously tiny.
SPREAD_TOLERANCE = 1e-12
#: Paired differences are rounded to this many decimals before testing (accuracies are counts
#: over at most millions of examples, so this only removes floating-point rounding).
DIFFERENCE_DECIMALS = 12
#: The paired tests, the first being the default.
TESTS = ("t", "wilcoxon", "signflip")
DEFAULT_TEST = TESTS[0]
#: Up to this many pairs the sign-flip test enumerates all 2**n sign patterns.
SIGNFLIP_EXACT_MAX = 16
#: Random sign patterns of the Monte Carlo sign-flip test (more pairs than the above).
SIGNFLIP_DRAWS = 20_000
#: Rows (cells) flipped at once by the exact tests (bounds memory at 2**16 patterns).
ROWS_PER_CHUNK = 64
#: Bisection steps of the sign-flip interval (the bracket shrinks 2**-steps).
INVERSION_STEPS = 40


@dataclass(frozen=True)
class PairedResult:
    """Outcome of a paired comparison of differences d = treated - control."""

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    p: float
    p_t: float
    p_wilcoxon: float
    test: str
    min_p: float
    note: str
    zero_pairs: int = 0


def min_attainable_p(test: str, n: int, nonzero: int | None = None) -> float:
    """Smallest two-sided p-value `test` can give on n pairs of distinct magnitudes (0 for the
    t-test), for planning. The rank and sign-flip tests give a zero difference no sign, so only
    the `nonzero` ones (all n unless given) count: their 2^nonzero sign patterns hold two
    extreme ones; beyond SIGNFLIP_EXACT_MAX pairs the sign-flip test draws SIGNFLIP_DRAWS
    patterns beside the observed one, so it cannot go below 1 / (SIGNFLIP_DRAWS + 1). A cell's
    own floor, with its ties, is `PairedResult.min_p`."""
    if n < 2:
        return 1.0
    if test == "t":
        return 0.0
    exact = min(1.0, 2.0 / 2.0 ** (n if nonzero is None else nonzero))
    if test == "signflip" and n > SIGNFLIP_EXACT_MAX:
        return max(exact, 1.0 / (SIGNFLIP_DRAWS + 1))
    return exact


#: Most seeds `seeds_needed` considers (a sign-flip floor stops falling beyond the exact range).
SEEDS_SEARCHED = 64


def seeds_needed(test: str, family: int, alpha: float) -> int | None:
    """Fewest pairs with which one cell of a family of `family` cells could be flagged alone
    (its q, `family` times its p for BH and Holm, below alpha); None when no number of seeds
    up to SEEDS_SEARCHED could."""
    for n in range(2, SEEDS_SEARCHED + 1):
        if min_attainable_p(test, n) * family < alpha:
            return n
    return None


def _t_rows(d: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = d.shape[1]
    mean, sd = d.mean(axis=1), d.std(axis=1, ddof=1)
    # identical differences have no spread to build an interval from: none, as there is no p
    varies = sd > SPREAD_TOLERANCE
    half = np.where(varies, stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n), np.nan)
    p = np.where(np.abs(mean) <= SPREAD_TOLERANCE, 1.0, np.nan)
    if varies.any():
        p[varies] = stats.ttest_1samp(d[varies], 0.0, axis=1).pvalue
    return p, mean - half, mean + half


#: How zeros enter the signed-rank test (scipy's `zero_method`). Pratt (1959): zeros are
#: ranked with the others, then carry no sign. Wilcoxon's own treatment (zeros dropped before
#: ranking) makes the test's verdict non-monotone in a shift of the differences: the shifts it
#: does not reject can have a hole, so no interval could agree with its p (8 of 300 tied cells
#: in tests/test_analysis_paired.py, none with Pratt's).
ZERO_METHOD = "pratt"


def _signed_ranks(d: np.ndarray) -> np.ndarray:
    """Ranks of |d| per row, zeros included (mid-ranks for ties); zeros then weigh 0 (Pratt)."""
    return np.where(d != 0, stats.rankdata(np.abs(d), axis=1), 0.0)


def _wilcoxon_p(d: np.ndarray) -> np.ndarray:
    """Signed-rank p per row. Up to SIGNFLIP_EXACT_MAX pairs: exact, by flipping the signs of
    the (mid-)ranks in all 2**n ways, ties and zeros included (what scipy does one row at a
    time, 1000x slower); beyond: scipy's exact test without ties, its normal approximation
    with them."""
    k, n = d.shape
    ranks = _signed_ranks(d)
    if n > SIGNFLIP_EXACT_MAX:
        p = np.ones(k)
        tied = (np.diff(np.sort(np.abs(d), axis=1), axis=1) == 0).any(axis=1) | (d == 0).any(1)
        testable = (d != 0).any(axis=1)
        for method, rows in (("exact", testable & ~tied), ("approx", testable & tied)):
            if rows.any():
                p[rows] = stats.wilcoxon(
                    d[rows], axis=1, method=method, zero_method=ZERO_METHOD
                ).pvalue
        return p
    patterns = (_sign_patterns(n) > 0).astype(float)  # 1 where the rank counts as positive
    centre = ranks.sum(axis=1, keepdims=True) / 2
    observed = np.abs((ranks * (d > 0)).sum(axis=1, keepdims=True) - centre)
    p = np.empty(k)
    for first in range(0, k, ROWS_PER_CHUNK):
        rows = slice(first, first + ROWS_PER_CHUNK)
        flipped = np.abs(ranks[rows] @ patterns.T - centre[rows])
        p[rows] = (flipped >= observed[rows] - 1e-9).mean(axis=1)
    return p


def _walsh(d: np.ndarray) -> np.ndarray:
    """Each row's Walsh averages (d_i + d_j) / 2, i <= j."""
    i, j = np.triu_indices(d.shape[1])
    return (d[:, i] + d[:, j]) / 2


def _wilcoxon_ci(d: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Interval of the pseudo-median (Hodges-Lehmann) by inverting the signed-rank test as
    `_wilcoxon_p` computes it. The signed-rank statistic of d - mu only changes where mu is a
    Walsh average, so each bound found by bisection is snapped to the nearest one; where the test
    rejects at that point itself (an open end), the bound is the nearest float inside."""
    walsh = _walsh(d)
    low, high = _inverted_interval(d, _wilcoxon_p, np.median(walsh, axis=1), confidence)
    out = []
    for bound, inward in ((low, np.inf), (high, -np.inf)):
        finite = np.isfinite(bound)
        nearest = np.take_along_axis(
            walsh, np.abs(walsh - np.nan_to_num(bound)[:, None]).argmin(axis=1)[:, None], axis=1
        )[:, 0]
        kept = _wilcoxon_p(d - nearest[:, None]) > 1 - confidence
        snapped = np.where(kept, nearest, np.nextafter(nearest, inward))
        out.append(np.where(finite, snapped, np.nan))
    return out[0], out[1]


def _sign_patterns(n: int) -> np.ndarray:
    if n <= SIGNFLIP_EXACT_MAX:
        return np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    rng = np.random.default_rng(0)
    draws = rng.choice((1.0, -1.0), size=(SIGNFLIP_DRAWS, n))
    return np.vstack([np.ones(n), draws])  # the observed pattern counts once


def _signflip_p(d: np.ndarray, signs: np.ndarray) -> np.ndarray:
    observed = np.abs(d.mean(axis=1))[:, None]
    flipped = np.abs(d @ signs.T) / d.shape[1]
    return (flipped >= observed * (1 - 1e-12)).mean(axis=1)


def _inverted_interval(
    d: np.ndarray, p_of: Callable[[np.ndarray], np.ndarray], centre: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """The shifts mu whose test on d - mu keeps p > 1 - confidence, by bisection from `centre`
    outwards (the interval that matches the test's p exactly, zeros and ties included: a shift
    that makes a difference zero is treated as the test treats a zero); NaN where even the
    extreme shift is not rejected."""
    level = 1 - confidence
    span = np.ptp(d, axis=1) + np.abs(centre) + 1e-9
    bounds = []
    for side in (-1.0, 1.0):
        inner, outer = centre.copy(), centre + side * 2 * span
        open_ = p_of(d - outer[:, None]) > level
        for _ in range(INVERSION_STEPS):
            mid = (inner + outer) / 2
            keep = p_of(d - mid[:, None]) > level
            inner, outer = np.where(keep, mid, inner), np.where(keep, outer, mid)
        bounds.append(np.where(open_, np.nan, (inner + outer) / 2))
    return bounds[0], bounds[1]


def _note(test: str, n: int, sd: float, mean: float, p: float) -> str:
    if test == "t" and sd <= SPREAD_TOLERANCE and abs(mean) > SPREAD_TOLERANCE:
        return "identical differences over seeds: the t-test is undefined"
    if test != "t" and math.isnan(p):
        return "no test possible"
    return ""


def paired_block(d: np.ndarray, test: str, confidence: float) -> list[PairedResult]:
    """Paired tests of k equally long rows of differences at once (rows are cells)."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; valid choices: {', '.join(TESTS)}")
    # equal differences of different runs (0.75 - 0.72, 0.85 - 0.82) differ by rounding: on a
    # grid they tie as they should, for the ranks, the zeros and the interval's Walsh averages
    d = np.round(d, DIFFERENCE_DECIMALS)
    k, n = d.shape
    nan = float("nan")
    mean = d.mean(axis=1) if n else np.full(k, nan)
    if n < 2:
        note = "no pairs" if n == 0 else "one pair: no test is possible"
        return [
            PairedResult(n, float(m), nan, nan, nan, nan, nan, nan, "none", 1.0, note) for m in mean
        ]
    sd = d.std(axis=1, ddof=1)
    p_t, low, high = _t_rows(d, confidence)
    p_w = _wilcoxon_p(d)
    if test == "wilcoxon":
        p = p_w
        low, high = _wilcoxon_ci(d, confidence)
    elif test == "signflip":
        signs = _sign_patterns(n)
        p = _signflip_p(d, signs)
        low, high = _inverted_interval(d, lambda x: _signflip_p(x, signs), mean, confidence)
    else:
        p = p_t
    # each cell's own floor: the p of its magnitudes with every non-zero one on the same side
    if test == "wilcoxon":
        min_p = _wilcoxon_p(np.abs(d))
    elif test == "signflip":
        min_p = _signflip_p(np.abs(d), signs)
    else:
        min_p = np.zeros(k)
    zeros = (d == 0).sum(axis=1)
    return [
        PairedResult(
            n,
            float(mean[i]),
            float(sd[i]),
            float(low[i]),
            float(high[i]),
            float(p[i]),
            float(p_t[i]),
            float(p_w[i]),
            test,
            float(min_p[i]),
            _note(test, n, float(sd[i]), float(mean[i]), float(p[i])),
            int(zeros[i]),
        )
        for i in range(k)
    ]


def paired_tests(
    diffs: Sequence[Sequence[float]], *, test: str = DEFAULT_TEST, confidence: float = CONFIDENCE
) -> list[PairedResult]:
    """`paired_block` for many sets of differences, vectorised over sets of equal length."""
    arrays = [np.asarray(d, dtype=float) for d in diffs]
    out: list[PairedResult | None] = [None] * len(arrays)
    for n in sorted({a.size for a in arrays}):
        index = [i for i, a in enumerate(arrays) if a.size == n]
        block = np.stack([arrays[i] for i in index]) if n else np.empty((len(index), 0))
        for i, res in zip(index, paired_block(block, test, confidence)):
            out[i] = res
    return out  # type: ignore[return-value]


def paired_test(
    diff: Sequence[float], *, test: str = DEFAULT_TEST, confidence: float = CONFIDENCE
) -> PairedResult:
    """Mean gain, the test's interval and p-value of one set of paired differences."""
    return paired_tests([diff], test=test, confidence=confidence)[0]
