"""Domain distances against hand-computed values and known behaviour."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import linalg

from transferlab.analysis.distances import (
    bures_squared,
    frechet_distance,
    frechet_from_moments,
    median_bandwidth,
    mmd2_unbiased,
    mmd_test,
    otdd,
    proxy_a_distance,
)


def test_mmd2_unbiased_on_three_plus_three_points():
    x = [[0.0], [1.0], [2.0]]
    y = [[0.5], [3.0], [4.0]]
    s = 1.0

    def k(a, b):
        return math.exp(-((a - b) ** 2) / (2 * s**2))

    xs, ys = [p[0] for p in x], [p[0] for p in y]
    kxx = sum(k(a, b) for a, b in itertools.permutations(xs, 2)) / 6
    kyy = sum(k(a, b) for a, b in itertools.permutations(ys, 2)) / 6
    kxy = sum(k(a, b) for a in xs for b in ys) / 9
    assert mmd2_unbiased(np.array(x), np.array(y), bandwidth=s) == pytest.approx(
        kxx + kyy - 2 * kxy
    )


def test_median_bandwidth_is_the_median_pairwise_distance():
    z = np.array([[0.0], [1.0], [3.0]])  # distances 1, 3, 2
    assert median_bandwidth(z) == pytest.approx(2.0)


def test_mmd_permutation_p_value():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
    _, p_same, _ = mmd_test(x, y, n_permutations=199, seed=1)
    _, p_shift, _ = mmd_test(x, y + 1.5, n_permutations=199, seed=1)
    assert p_same > 0.05
    assert p_shift == pytest.approx(1 / 200)


def test_proxy_a_distance_bounds_and_behaviour():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    same = proxy_a_distance(x, rng.normal(size=(200, 5)))
    far = proxy_a_distance(x, rng.normal(size=(200, 5)) + 10)
    assert 0.0 <= same < 0.5
    assert far == pytest.approx(2.0)
    assert 0.0 <= proxy_a_distance(x, rng.normal(size=(200, 5)) + 0.5) <= 2.0


def test_frechet_closed_form_for_gaussian_moments():
    mu1, mu2 = np.array([0.0, 1.0]), np.array([1.0, 3.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([4.0, 9.0])
    # commuting covariances: |mu|^2 + sum (sqrt(a) - sqrt(b))^2 = 5 + (1 + 1)
    assert frechet_from_moments(mu1, s1, mu2, s2) == pytest.approx(7.0)
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    b = np.array([[1.0, -0.3], [-0.3, 3.0]])
    ra = linalg.sqrtm(a)
    expected = np.trace(a + b - 2 * linalg.sqrtm(ra @ b @ ra)).real
    assert frechet_from_moments(mu1, a, mu1, b) == pytest.approx(expected)


def test_frechet_on_samples_approaches_the_closed_form():
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, size=(20000, 2))
    y = rng.normal(1.0, 2.0, size=(20000, 2))
    # |mu|^2 = 2, Bures^2 = 2 (1 - 2)^2 = 2
    assert frechet_distance(x, y) == pytest.approx(4.0, rel=0.05)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_bures_matches_the_definition():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3, 3))
    b = rng.normal(size=(3, 3))
    a, b = a @ a.T, b @ b.T
    ra = linalg.sqrtm(a)
    expected = np.trace(a + b - 2 * linalg.sqrtm(ra @ b @ ra)).real
    assert bures_squared(a[None], b[None])[0, 0] == pytest.approx(expected)


def test_otdd_hand_value_zero_for_identical_and_growing_with_shift():
    # single-example classes: label cost = squared mean distance; the identity coupling costs
    # ((0 - 0)^2 + 0 + (1 - 3)^2 + (1 - 3)^2) / 2 = 4 (the crossed one 10), so OTDD = 2
    x, lx = np.array([[0.0], [1.0]]), np.array([0, 1])
    y, ly = np.array([[0.0], [3.0]]), np.array([0, 1])
    assert otdd(x, lx, y, ly) == pytest.approx(2.0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=90)
    feats = rng.normal(size=(90, 4)) + labels[:, None]
    assert otdd(feats, labels, feats, labels) == pytest.approx(0.0, abs=1e-6)
    values = [otdd(feats, labels, feats + shift, labels) for shift in (0.5, 1.0, 2.0)]
    assert values[0] < values[1] < values[2]
