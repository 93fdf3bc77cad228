"""Transferability estimators computed before fine-tuning, from the source model on target
data: LogME (You et al. 2021), LEEP (Nguyen et al. 2020), NCE (Tran et al. 2019) and H-score
(Bao et al. 2019) with a shrunk feature covariance (Ibrahim et al. 2022), and two baselines every
estimator has to beat to be worth its name: the leave-one-out k-NN accuracy and a linear probe's
validation accuracy on the same source features. Higher is better for all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: LogME fixed-point iteration: relative change of alpha/beta that counts as converged.
LOGME_TOLERANCE = 1e-8
LOGME_MAX_ITER = 1000
#: Initial prior and noise precisions of the LogME iteration.
LOGME_INIT = 1.0
#: The iteration also stops when the effective number of parameters gamma (or n - gamma) falls
#: below this: the evidence is then at its limit (w -> 0, or noise -> 0) within this margin.
LOGME_GAMMA_FLOOR = 1e-10
#: Singular values below this share of the largest are treated as zero.
SVD_RCOND = 1e-10
ESTIMATORS = ("logme", "leep", "nce", "hscore")
#: Baselines computed beside the estimators (and compared with them the same way).
BASELINES = ("knn_loo", "linear_probe")
#: Neighbours of the leave-one-out k-NN baseline.
KNN_NEIGHBOURS = 5
#: Share of the target sample the linear probe is validated on (stratified, seeded).
PROBE_VAL_SHARE = 0.5
#: Iterations of the linear probe's solver (standardised features converge well before).
PROBE_MAX_ITER = 1000


@dataclass(frozen=True)
class Evidence:
    """LogME's fixed point for one target column: precisions and the log evidence per example."""

    alpha: float
    beta: float
    evidence: float
    iterations: int


def _labels(labels: np.ndarray) -> np.ndarray:
    """Labels as 0..C-1 (the estimators do not care about label names)."""
    return np.unique(np.asarray(labels), return_inverse=True)[1]


def logme_evidence(features: np.ndarray, y: np.ndarray) -> Evidence:
    """Maximised log evidence per example of Bayesian linear regression y = F w + noise, with
    w ~ N(0, 1/alpha) and noise ~ N(0, 1/beta), by MacKay's fixed-point iteration."""
    return _evidence(_svd(features), np.asarray(y, dtype=np.float64))


def _svd(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Left singular vectors and non-zero singular values of F, and its column count."""
    f = np.asarray(features, dtype=np.float64)
    u, sv, _ = np.linalg.svd(f, full_matrices=False)
    keep = sv > SVD_RCOND * (sv[0] if sv.size else 0.0)
    return u[:, keep], sv[keep], f.shape[1]


def _evidence(svd: tuple[np.ndarray, np.ndarray, int], y: np.ndarray) -> Evidence:
    u, sv, d = svd
    n = len(y)
    s = sv**2  # non-zero eigenvalues of F^T F; the other d - k are zero
    proj = u.T @ y  # coordinates of y in the column space of F
    residual_out = float(y @ y - proj @ proj)  # part of y no w can reach
    alpha = beta = LOGME_INIT
    iterations = 0
    for iterations in range(1, LOGME_MAX_ITER + 1):  # noqa: B007 (the count is reported)
        shrink = beta * s / (alpha + beta * s)
        gamma = float(shrink.sum())
        m2 = float(np.sum((shrink * proj / sv) ** 2))  # |m|^2, m the posterior mean
        res2 = float(np.sum(((1.0 - shrink) * proj) ** 2)) + residual_out  # |y - F m|^2
        if min(gamma, n - gamma) < LOGME_GAMMA_FLOOR or m2 <= 0.0 or res2 <= 0.0:
            break  # a precision diverges; the evidence has reached its limit
        new_alpha, new_beta = gamma / m2, (n - gamma) / res2
        done = (
            abs(new_alpha - alpha) <= LOGME_TOLERANCE * alpha
            and abs(new_beta - beta) <= LOGME_TOLERANCE * beta
        )
        alpha, beta = new_alpha, new_beta
        if done:
            break
    shrink = beta * s / (alpha + beta * s)
    m2 = float(np.sum((shrink * proj / sv) ** 2))
    res2 = float(np.sum(((1.0 - shrink) * proj) ** 2)) + residual_out
    log_det = float(np.sum(np.log(alpha + beta * s)) + (d - s.size) * np.log(alpha))
    evidence = (
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - log_det / 2
        - beta / 2 * res2
        - alpha / 2 * m2
        - n / 2 * np.log(2 * np.pi)
    )
    return Evidence(
        alpha=float(alpha), beta=float(beta), evidence=float(evidence / n), iterations=iterations
    )


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME: mean over classes of the maximised evidence per example of regressing the
    one-hot class indicator on the features."""
    y = _labels(labels)
    onehot = np.eye(y.max() + 1)[y]
    svd = _svd(features)
    return float(np.mean([_evidence(svd, onehot[:, c]).evidence for c in range(onehot.shape[1])]))


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP: mean log-likelihood of the target labels under the empirical conditional P(y|z)
    of target label given source label, mixed by the source model's softmax theta(x)."""
    theta = np.asarray(source_probs, dtype=np.float64)
    y = _labels(labels)
    n = len(y)
    joint = np.zeros((y.max() + 1, theta.shape[1]))
    np.add.at(joint, y, theta / n)  # P(y, z)
    conditional = joint / joint.sum(axis=0, keepdims=True)  # P(y | z)
    likelihood = np.einsum("iz,iz->i", theta, conditional[y])
    return float(np.mean(np.log(likelihood)))


def nce(source_labels: np.ndarray, labels: np.ndarray) -> float:
    """NCE: -H(Y | Z) from the empirical joint of target label y and hard source label z."""
    y = _labels(labels)
    z = _labels(source_labels)
    joint = np.zeros((y.max() + 1, z.max() + 1))
    np.add.at(joint, (y, z), 1.0 / len(y))
    conditional = joint / joint.sum(axis=0, keepdims=True)
    mask = joint > 0
    return float(np.sum(joint[mask] * np.log(conditional[mask])))


def hscore(features: np.ndarray, labels: np.ndarray, *, shrink: bool = True) -> float:
    """H-score: tr(cov(f)^-1 cov(E[f | y])), how well class means separate relative to the
    feature covariance. With ``shrink`` (the default), cov(f) is the Ledoit-Wolf shrinkage
    estimate (1 - a) S + a mu I and cov(E[f | y]) is scaled by (1 - a) (Ibrahim et al. 2022):
    the plain pseudo-inverse (``shrink=False``, Bao et al. 2019) gives classes - 1 for any
    features once the dimension reaches the sample count, so every source would score alike."""
    from sklearn.covariance import ledoit_wolf

    f = np.asarray(features, dtype=np.float64)
    y = _labels(labels)
    centred = f - f.mean(axis=0)
    sums = np.zeros((y.max() + 1, f.shape[1]))
    np.add.at(sums, y, centred)
    class_means = sums / np.bincount(y)[:, None]
    g = class_means[y]  # E[f | y] for each example (centred)
    cov_g = g.T @ g / len(f)
    if not shrink:
        cov_f = centred.T @ centred / len(f)
        return float(np.trace(np.linalg.pinv(cov_f, hermitian=True) @ cov_g))
    cov_f, amount = ledoit_wolf(centred, assume_centered=True)
    return float(np.trace(np.linalg.solve(cov_f, (1 - amount) * cov_g)))


def knn_loo_accuracy(features: np.ndarray, labels: np.ndarray, k: int = KNN_NEIGHBOURS) -> float:
    """Leave-one-out accuracy of a k-nearest-neighbour vote (Euclidean; a tie goes to the
    lowest label): what the source features give with no training at all."""
    from scipy.spatial.distance import cdist

    f = np.asarray(features, dtype=np.float64)
    y = _labels(labels)
    distances = cdist(f, f)
    np.fill_diagonal(distances, np.inf)  # leave each example out of its own vote
    k = min(k, len(y) - 1)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
    votes = np.zeros((len(y), y.max() + 1))
    np.add.at(votes, (np.repeat(np.arange(len(y)), k), y[nearest].ravel()), 1.0)
    return float(np.mean(votes.argmax(axis=1) == y))


def linear_probe_accuracy(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Validation accuracy of a logistic regression on standardised source features, trained
    on part of the target sample and validated on the rest (`PROBE_VAL_SHARE`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = _labels(labels)
    stratify = y if np.bincount(y).min() >= 2 else None
    f_train, f_val, y_train, y_val = train_test_split(
        features, y, test_size=PROBE_VAL_SHARE, random_state=seed, stratify=stratify
    )
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_MAX_ITER))
    return float(probe.fit(f_train, y_train).score(f_val, y_val))


def all_estimators(
    features: np.ndarray, source_probs: np.ndarray | None, labels: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """The four scores and the two baselines of one (source model, target data) pair; LEEP and
    NCE need the source model's softmax (NaN without it)."""
    scores = {
        "logme": logme(features, labels),
        "hscore": hscore(features, labels),
        "knn_loo": knn_loo_accuracy(features, labels),
        "linear_probe": linear_probe_accuracy(features, labels, seed),
    }
    if source_probs is None:
        scores.update(leep=np.nan, nce=np.nan)
    else:
        scores.update(
            leep=leep(source_probs, labels), nce=nce(np.argmax(source_probs, axis=1), labels)
        )
    return {k: scores[k] for k in (*ESTIMATORS, *BASELINES)}
