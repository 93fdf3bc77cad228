"""Transferability estimators against values computed by hand on tiny inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from transferlab.analysis.estimators import (
    all_estimators,
    hscore,
    knn_loo_accuracy,
    leep,
    linear_probe_accuracy,
    logme,
    logme_evidence,
    nce,
)


def test_leep_matches_hand_computation_on_4x2():
    theta = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    # P(y, z) = 1/4 sum_{i: y_i = y} theta_iz -> [[.375, .125], [.125, .375]]; P(z) = .5 each
    # P(y | z) = [[.75, .25], [.25, .75]]; per-example sum_z P(y_i|z) theta_iz:
    per_example = [
        0.75 * 0.9 + 0.25 * 0.1,
        0.25 * 0.2 + 0.75 * 0.8,
        0.75 * 0.6 + 0.25 * 0.4,
        0.25 * 0.3 + 0.75 * 0.7,
    ]
    assert per_example == pytest.approx([0.7, 0.65, 0.55, 0.6])
    assert leep(theta, y) == pytest.approx(np.mean(np.log(per_example)), abs=1e-12)


def test_leep_label_names_do_not_matter_and_it_is_at_most_zero():
    rng = np.random.default_rng(0)
    theta = rng.dirichlet(np.ones(5), size=40)
    y = rng.integers(0, 3, size=40)
    assert leep(theta, y) == pytest.approx(leep(theta, y + 10))
    assert leep(theta, y) <= 0.0


def test_nce_hand_values():
    assert nce(np.array([0, 1, 0, 1]), np.array([0, 1, 0, 1])) == pytest.approx(0.0)
    # z0 holds y = 0 and y = 1 once each (H = ln 2), z1 holds y = 0 twice (H = 0): P(z0) = 1/2
    assert nce(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 0])) == pytest.approx(-0.5 * math.log(2))


def test_hscore_hand_value():
    f = np.array([[0.0], [2.0], [4.0], [6.0]])
    # cov f = mean((f - 3)^2) = 5; class means 1 and 5 -> centred +-2 -> cov 4; H = 4 / 5
    assert hscore(f, np.array([0, 0, 1, 1]), shrink=False) == pytest.approx(0.8)


def _direct_fixed_point(f: np.ndarray, y: np.ndarray, alpha: float, beta: float):
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = np.linalg.solve(a, beta * f.T @ y)
    s = np.linalg.eigvalsh(f.T @ f)
    gamma = np.sum(beta * s / (alpha + beta * s))
    return m, gamma


@pytest.mark.parametrize("n,d", [(30, 4), (12, 3)])
def test_logme_evidence_is_the_marginal_likelihood_at_the_fixed_point(n, d):
    rng = np.random.default_rng(n)
    f = rng.normal(size=(n, d))
    y = f @ rng.normal(size=d) + 0.5 * rng.normal(size=n)
    ev = logme_evidence(f, y)
    # the fixed point: alpha = gamma / |m|^2, beta = (n - gamma) / |y - F m|^2
    m, gamma = _direct_fixed_point(f, y, ev.alpha, ev.beta)
    assert ev.alpha == pytest.approx(gamma / (m @ m), rel=1e-6)
    assert ev.beta == pytest.approx((n - gamma) / np.sum((y - f @ m) ** 2), rel=1e-6)
    # evidence = log N(y; 0, I / beta + F F^T / alpha), per example
    cov = np.eye(n) / ev.beta + f @ f.T / ev.alpha
    direct = multivariate_normal(np.zeros(n), cov).logpdf(y) / n
    assert ev.evidence == pytest.approx(direct, abs=1e-9)
    # and it is a maximum over (alpha, beta)
    for da, db in [(1.2, 1), (0.8, 1), (1, 1.2), (1, 0.8)]:
        c = np.eye(n) / (ev.beta * db) + f @ f.T / (ev.alpha * da)
        assert multivariate_normal(np.zeros(n), c).logpdf(y) / n < ev.evidence


def test_logme_is_the_mean_evidence_over_one_hot_classes():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=40)
    f = rng.normal(size=(40, 5)) + labels[:, None]
    per_class = [logme_evidence(f, (labels == c).astype(float)).evidence for c in range(3)]
    assert logme(f, labels) == pytest.approx(np.mean(per_class))


def test_estimators_prefer_informative_features():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, size=200)
    good = np.eye(4)[labels] * 3 + rng.normal(size=(200, 4))
    bad = rng.normal(size=(200, 4))
    assert logme(good, labels) > logme(bad, labels)
    assert hscore(good, labels) > hscore(bad, labels)
    probs_good = np.exp(good) / np.exp(good).sum(1, keepdims=True)
    probs_bad = np.exp(bad) / np.exp(bad).sum(1, keepdims=True)
    assert leep(probs_good, labels) > leep(probs_bad, labels)
    assert nce(probs_good.argmax(1), labels) > nce(probs_bad.argmax(1), labels)
    scores = all_estimators(good, None, labels)
    assert np.isnan(scores["leep"]) and np.isfinite(scores["logme"])


def test_shrunk_hscore_tells_signal_from_noise_when_dimension_reaches_samples():
    # 500 examples of 512-d features: the plain H-score is classes - 1 whatever the features
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 50)
    noise = rng.normal(size=(500, 512))
    signal = noise + 2.0 * np.eye(512)[labels * 7]  # each class shifted along its own axis
    assert hscore(noise, labels, shrink=False) == pytest.approx(9.0, abs=1e-6)
    assert hscore(signal, labels, shrink=False) == pytest.approx(9.0, abs=1e-6)
    assert hscore(signal, labels) > 2 * hscore(noise, labels)


def test_knn_leave_one_out_on_a_hand_case():
    # two tight pairs of class 0 and 1, and one class-1 point inside the class-0 pair's reach
    f = np.array([[0.0], [0.1], [5.0], [5.1], [0.2]])
    y = np.array([0, 0, 1, 1, 1])
    # k = 1: 0 -> 0.1 (0, right), 0.1 -> 0 or 0.2 (0.0 at 0.1, 0.2 at 0.1: stable order picks
    # 0.0: right), 5.0 -> 5.1 (right), 5.1 -> 5.0 (right), 0.2 -> 0.1 (class 0: wrong)
    assert knn_loo_accuracy(f, y, k=1) == pytest.approx(4 / 5)
    # k = 3: 0.0's neighbours 0.1, 0.2, 5.0 vote 0, 1, 1: wrong; 0.1's 0.0, 0.2, 5.0: wrong;
    # 5.0's 5.1, 0.2, 0.1 vote 1, 1, 0: right; 5.1's likewise: right; 0.2's 0.1, 0.0, 5.0: wrong
    assert knn_loo_accuracy(f, y, k=3) == pytest.approx(2 / 5)


def test_linear_probe_separates_separable_features():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    separable = rng.normal(size=(120, 8)) + 4 * np.eye(8)[labels]
    assert linear_probe_accuracy(separable, labels) == pytest.approx(1.0)
    noise = rng.normal(size=(120, 8))
    assert linear_probe_accuracy(noise, labels) < 0.6


def test_report_sets_each_estimator_beside_the_baselines():
    import pandas as pd

    from transferlab.analysis.findings import _estimator_lines

    agreement = pd.DataFrame(
        {
            "estimator": ["logme", "hscore", "knn_loo", "linear_probe"] * 2,
            "kendall": [0.8, 0.2, 0.4, 0.6, 0.6, 0.0, 0.4, 0.6],
            "target": "digits",  # two sizes of one target: they share its scores
        }
    )
    lines = _estimator_lines(agreement)
    logme_line = next(line for line in lines if line.startswith("- logme"))
    hscore_line = next(line for line in lines if line.startswith("- hscore"))
    assert "+0.70" in logme_line and "knn_loo +0.40, linear_probe +0.60" in logme_line
    assert "a higher mean than both baselines" in logme_line
    assert "descriptive: mean over 2 target sizes of 1 target(s)" in logme_line
    assert "not above the baselines" in hscore_line
    assert not any(line.startswith("- knn_loo") for line in lines)  # baselines are the yardstick
