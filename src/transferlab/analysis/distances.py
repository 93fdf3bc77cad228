"""Distances between two samples (rows are examples): MMD^2 with a permutation test, proxy
A-distance, Frechet distance of Gaussian fits and the label-aware OTDD (Alvarez-Melis and Fusi
2020). Definitions: the project leads' references, "Domain distances".
"""

from __future__ import annotations

import numpy as np
import ot
from scipy.spatial.distance import cdist, pdist
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

#: Permutations of the pooled sample for the MMD p-value.
MMD_PERMUTATIONS = 200
#: Permutations evaluated per matrix product (bounds memory).
MMD_PERMUTATION_BATCH = 100
#: Held-out share for the proxy A-distance domain classifier.
PAD_TEST_SIZE = 0.5
#: Iteration cap of the domain classifier.
PAD_MAX_ITER = 2000
#: Dimension cap for Gaussian fits (Frechet, OTDD); more dimensions need far more examples.
MAX_GAUSSIAN_DIM = 64


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


def median_bandwidth(z: np.ndarray) -> float:
    """Median heuristic: the median Euclidean distance between distinct pooled points."""
    d = pdist(_as_2d(z))
    s = float(np.median(d)) if d.size else 0.0
    return s if s > 0 else 1.0


def rbf_kernel(a: np.ndarray, b: np.ndarray, bandwidth: float) -> np.ndarray:
    """k(a, b) = exp(-|a - b|^2 / (2 s^2))."""
    return np.exp(-cdist(_as_2d(a), _as_2d(b), "sqeuclidean") / (2.0 * bandwidth**2))


def _mmd2_from_kernel(
    k0: np.ndarray, total: float, masks: np.ndarray, m: int, n: int
) -> np.ndarray:
    """Unbiased MMD^2 for each row of ``masks`` (1 marks the first sample); k0 has a zero
    diagonal and sums to ``total``."""
    ak = masks @ k0
    xx = (ak * masks).sum(axis=1)
    xy = (ak * (1.0 - masks)).sum(axis=1)
    yy = total - xx - 2.0 * xy
    return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2.0 * xy / (m * n)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased MMD^2 with an RBF kernel (median-heuristic bandwidth unless given)."""
    return mmd_test(x, y, n_permutations=0, bandwidth=bandwidth)[0]


def mmd_test(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_permutations: int = MMD_PERMUTATIONS,
    bandwidth: float | None = None,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Unbiased MMD^2, its permutation p-value (pooled sample relabelled) and the bandwidth.

    The p-value is (1 + #{permuted >= observed}) / (1 + n_permutations); NaN without
    permutations.
    """
    x, y = _as_2d(x), _as_2d(y)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("MMD needs at least two examples in each sample")
    z = np.vstack([x, y])
    s = median_bandwidth(z) if bandwidth is None else float(bandwidth)
    k0 = rbf_kernel(z, z, s)
    np.fill_diagonal(k0, 0.0)
    total = float(k0.sum())
    mask = np.r_[np.ones(m), np.zeros(n)][None, :]
    observed = float(_mmd2_from_kernel(k0, total, mask, m, n)[0])
    if n_permutations <= 0:
        return observed, float("nan"), s
    rng = np.random.default_rng(seed)
    exceed = 0
    for start in range(0, n_permutations, MMD_PERMUTATION_BATCH):
        batch = min(MMD_PERMUTATION_BATCH, n_permutations - start)
        masks = np.array([rng.permutation(mask[0]) for _ in range(batch)])
        exceed += int((_mmd2_from_kernel(k0, total, masks, m, n) >= observed).sum())
    return observed, (1.0 + exceed) / (1.0 + n_permutations), s


def proxy_a_distance(
    x: np.ndarray, y: np.ndarray, *, test_size: float = PAD_TEST_SIZE, seed: int = 0
) -> float:
    """Proxy A-distance 2 (1 - 2 e), e the held-out error (clipped at 0.5) of a linear
    classifier separating the two samples; both are subsampled to equal size first."""
    x, y = _as_2d(x), _as_2d(y)
    rng = np.random.default_rng(seed)
    k = min(len(x), len(y))
    x = x[rng.permutation(len(x))[:k]]
    y = y[rng.permutation(len(y))[:k]]
    data = np.vstack([x, y])
    domain = np.r_[np.zeros(k), np.ones(k)]
    tr_x, te_x, tr_d, te_d = train_test_split(
        data, domain, test_size=test_size, stratify=domain, random_state=seed
    )
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=PAD_MAX_ITER))
    err = min(1.0 - clf.fit(tr_x, tr_d).score(te_x, te_d), 0.5)
    return float(2.0 * (1.0 - 2.0 * err))


def gaussian_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (zero for a single example) of a sample."""
    x = _as_2d(x)
    d = x.shape[1]
    cov = np.cov(x, rowvar=False).reshape(d, d) if len(x) > 1 else np.zeros((d, d))
    return x.mean(axis=0), cov


def frechet_from_moments(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    The trace term is computed as Tr((S1^1/2 S2 S1^1/2)^1/2) from symmetric eigen-
    decompositions (the same value as scipy.linalg.sqrtm(S1 @ S2), which is unstable and
    warns for the rank-deficient covariances of ReLU features).
    """
    bures = bures_squared(np.asarray(s1, float)[None], np.asarray(s2, float)[None])[0, 0]
    return float(np.sum((np.asarray(mu1) - np.asarray(mu2)) ** 2) + bures)


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussian fits of two samples (the FID formula, squared form)."""
    return frechet_from_moments(*gaussian_fit(x), *gaussian_fit(y))


def _class_moments(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    classes, index = np.unique(labels, return_inverse=True)
    fits = [gaussian_fit(x[index == c]) for c in range(len(classes))]
    return index, np.stack([f[0] for f in fits]), np.stack([f[1] for f in fits])


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric square roots of a stack of PSD matrices (eigenvalues clipped at zero)."""
    vals, vecs = np.linalg.eigh(c)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))[..., None, :]) @ np.swapaxes(vecs, -1, -2)


def bures_squared(cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Squared Bures distances Tr(A + B - 2 (A^1/2 B A^1/2)^1/2) between two stacks of
    covariances, (k, d, d) and (l, d, d) -> (k, l). Eigen-decompositions of symmetric matrices
    keep it real and fast for the singular covariances of small classes (where
    ot.gaussian.bures_wasserstein_distance returns NaN)."""
    root = _psd_sqrt(cx)
    inner = root[:, None] @ cy[None, :] @ root[:, None]
    inner = (inner + np.swapaxes(inner, -1, -2)) / 2.0
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0.0, None)).sum(axis=-1)
    trace_x = np.trace(cx, axis1=-2, axis2=-1)[:, None]
    trace_y = np.trace(cy, axis1=-2, axis2=-1)[None, :]
    return np.maximum(trace_x + trace_y - 2.0 * cross, 0.0)


def label_distances(
    x: np.ndarray, labels_x: np.ndarray, y: np.ndarray, labels_y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squared 2-Wasserstein distances between the Gaussian fits of every class of x and of y
    (|mu - mu'|^2 plus the squared Bures term), with each example's class index on each side."""
    ix, mx, cx = _class_moments(_as_2d(x), np.asarray(labels_x))
    iy, my, cy = _class_moments(_as_2d(y), np.asarray(labels_y))
    w2 = cdist(mx, my, "sqeuclidean") + bures_squared(cx, cy)
    return w2, ix, iy


def otdd(x: np.ndarray, labels_x: np.ndarray, y: np.ndarray, labels_y: np.ndarray) -> float:
    """Optimal-transport dataset distance (p = 2) with the Gaussian (Bures) label cost:
    sqrt(min over couplings of sum pi_ij (|x_i - y_j|^2 + W_2^2(a_{y_i}, a_{y_j})))."""
    x, y = _as_2d(x), _as_2d(y)
    w2, ix, iy = label_distances(x, labels_x, y, labels_y)
    cost = cdist(x, y, "sqeuclidean") + w2[np.ix_(ix, iy)]
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    return float(np.sqrt(max(float(ot.emd2(a, b, cost, numItermax=10**7)), 0.0)))


def reduce_pair(
    x: np.ndarray, y: np.ndarray, max_dim: int = MAX_GAUSSIAN_DIM, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Project both samples onto the leading principal components of the pooled sample (at most
    ``max_dim``, fewer than the smaller sample), so Gaussian fits are well determined."""
    x, y = _as_2d(x), _as_2d(y)
    dim = min(max_dim, x.shape[1], min(len(x), len(y)) - 1)
    if dim >= x.shape[1]:
        return x, y
    pca = PCA(n_components=max(dim, 1), random_state=seed).fit(np.vstack([x, y]))
    return pca.transform(x), pca.transform(y)


def pair_distances(
    x: np.ndarray, lx: np.ndarray, y: np.ndarray, ly: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """All distances between two labelled samples (equal sizes are used)."""
    k = min(len(x), len(y))
    x, lx, y, ly = x[:k], lx[:k], y[:k], ly[:k]
    mmd2, mmd_p, bandwidth = mmd_test(x, y, seed=seed)
    rx, ry = reduce_pair(x, y, seed=seed)
    return {
        "mmd2": mmd2,
        "mmd_p": mmd_p,
        "proxy_a": proxy_a_distance(x, y, seed=seed),
        "frechet": frechet_distance(rx, ry),
        "otdd": otdd(rx, lx, ry, ly),
        "n": k,
        "dim": int(x.reshape(k, -1).shape[1]),
        "gaussian_dim": int(rx.shape[1]),
        "bandwidth": bandwidth,
    }
