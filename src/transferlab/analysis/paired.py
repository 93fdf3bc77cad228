"""Paired tests of fine-tuned against scratch accuracy over seeds, each with the interval that
matches it, the smallest p-value it can reach, and the seeds a flag would need.

A cell compares n seeds; a study corrects over m cells. A test whose smallest attainable p is
2 / 2**n (Wilcoxon, sign-flip) cannot flag a lone effect once m * 2 / 2**n >= alpha (10 seeds,
more than about 25 cells at alpha 0.05), however large the effect; the paired t-test has no such
floor, so it is the default (docs/analysis.md measures the power of each on simulated studies).

- `t`: paired t-test, t-interval of the mean gain (assumes roughly normal differences).
- `wilcoxon`: signed-rank test, exact with ties and zeros (mid-ranks, all 2**n sign flips at
  once for every cell; scipy runs a permutation test per cell when ties occur, 1000x slower),
  Hodges-Lehmann interval of the pseudo-median from the exact signed-rank distribution.
- `signflip`: exact sign-flip permutation test of the mean (Monte Carlo beyond
  `SIGNFLIP_EXACT_MAX` pairs), interval by inverting it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from transferlab.analysis.stats import CONFIDENCE

#: Differences whose SD is at most this are identical: accuracies are counts over at most
#: millions of examples, so a smaller spread is floating-point rounding of one value, whose
#: t-statistic would be huge and its p spuriously tiny.
SPREAD_TOLERANCE = 1e-12
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


def min_attainable_p(test: str, n: int, nonzero: int | None = None) -> float:
    """Smallest two-sided p-value `test` can give on n pairs (0 for the t-test). The rank and
    sign-flip tests give a zero difference no sign, so only the `nonzero` ones (all n unless
    given) count: their 2^nonzero sign patterns hold two extreme ones."""
    if n < 2:
        return 1.0
    if test == "t":
        return 0.0
    return min(1.0, 2.0 / 2.0 ** (n if nonzero is None else nonzero))


def seeds_needed(test: str, family: int, alpha: float) -> int:
    """Fewest pairs with which one cell of a family of `family` cells could be flagged alone
    (its q, `family` times its p for BH and Holm, below alpha)."""
    for n in itertools.count(2):
        if min_attainable_p(test, n) * family < alpha:
            return n
    raise AssertionError("unreachable")


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


def _signed_ranks(d: np.ndarray) -> np.ndarray:
    """Ranks of |d| per row among the non-zero differences (mid-ranks for ties; zeros get 0,
    as in Wilcoxon's treatment of zeros)."""
    nonzero = d != 0
    ranks = stats.rankdata(np.abs(d), axis=1) - (~nonzero).sum(axis=1, keepdims=True)
    return np.where(nonzero, ranks, 0.0)


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
                p[rows] = stats.wilcoxon(d[rows], axis=1, method=method).pvalue
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


def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(T+ <= t) for t = 0..n(n+1)/2 under H0 (exact, by counting subsets)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()
    return np.cumsum(counts) / 2.0**n


def _hodges_lehmann_ci(d: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Interval of the pseudo-median from sorted Walsh averages and the exact null of T+."""
    n = d.shape[1]
    i, j = np.triu_indices(n)
    walsh = np.sort((d[:, i] + d[:, j]) / 2, axis=1)
    c = int(np.searchsorted(_signed_rank_cdf(n), (1 - confidence) / 2, side="right"))
    if c == 0:  # too few pairs for any interval at this level
        return np.full(len(d), np.nan), np.full(len(d), np.nan)
    return walsh[:, c - 1], walsh[:, walsh.shape[1] - c]


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


def _signflip_ci(
    d: np.ndarray, signs: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """The shifts mu whose sign-flip test on d - mu keeps p > 1 - confidence (by bisection
    from the mean outwards); NaN where even the extreme shift is not rejected."""
    level = 1 - confidence
    mean = d.mean(axis=1)
    span = np.ptp(d, axis=1) + np.abs(mean) + 1e-9
    bounds = []
    for side in (-1.0, 1.0):
        inner, outer = mean.copy(), mean + side * 2 * span
        open_ = _signflip_p(d - outer[:, None], signs) > level
        for _ in range(INVERSION_STEPS):
            mid = (inner + outer) / 2
            keep = _signflip_p(d - mid[:, None], signs) > level
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
        low, high = _hodges_lehmann_ci(d, confidence)
    elif test == "signflip":
        signs = _sign_patterns(n)
        p = _signflip_p(d, signs)
        low, high = _signflip_ci(d, signs, confidence)
    else:
        p = p_t
    min_p = [min_attainable_p(test, n, int(m)) for m in np.count_nonzero(d, axis=1)]
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
            min_p[i],
            _note(test, n, float(sd[i]), float(mean[i]), float(p[i])),
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
