"""Domain shift and transferability glue: data and source-model outputs per (source checkpoint,
dataset), cached on disk; distances per (source, target) pair in pixel and feature space;
estimators per source (their relation to the realised transfer: `relation`).

Nothing here may stop the analysis: a pair whose data or checkpoint cannot be loaded gets a row
with ``status = "unavailable"`` and the reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from transferlab._helpers import atomic_write, first_line
from transferlab.analysis.distances import pair_distances
from transferlab.analysis.estimators import BASELINES, ESTIMATORS, all_estimators
from transferlab.analysis.keys import PAIR
from transferlab.analysis.settings import DEFAULT_MAX_EXAMPLES

DISTANCES = ("mmd2", "mmd_p", "proxy_a", "frechet", "otdd")
#: Distances related to the gain (mmd_p is a test, not a distance).
SHIFT_MEASURES = ("mmd2", "proxy_a", "frechet", "otdd")
SPACES = ("pixel", "feature")
CACHE_VERSION = 1


@dataclass(frozen=True)
class DataRequest:
    """A capped, seeded sample of one split of a dataset spec at a size and channel count."""

    spec: Mapping[str, Any]
    image_size: int
    channels: int
    split_seed: int
    max_examples: int
    split: str = "train"
    seed: int = 0
    pool: str = "all"  # the part of the training pool the stage drew from (data.build)
    target_share: float | None = None

    def key(self) -> str:
        """Stable identity for caching."""
        text = json.dumps(
            {**self.__dict__, "spec": self.spec, "v": CACHE_VERSION}, sort_keys=True, default=str
        )
        return hashlib.sha256(text.encode()).hexdigest()[:24]


class Backend(Protocol):
    """Where images and source-model outputs come from (the default uses transferlab)."""

    def images(self, request: DataRequest) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, C, H, W) images and int labels of the request."""

    def outputs(self, checkpoint: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pre-logit features (N, D) and softmax over source labels (N, Z) of the checkpoint."""


class TorchBackend:
    """Images from transferlab.data.build_splits, outputs from transferlab.models."""

    def images(self, request: DataRequest) -> tuple[np.ndarray, np.ndarray]:
        """A seeded sample of at most max_examples from the requested split."""
        from transferlab.data import build_splits

        splits = build_splits(
            dict(request.spec),
            image_size=request.image_size,
            channels=request.channels,
            split_seed=request.split_seed,
            pool=request.pool,
            target_share=request.target_share,
            data_mode="auto",  # a large image folder: only the sampled examples are read
        )
        part = getattr(splits, request.split)
        order = np.random.default_rng(request.seed).permutation(len(part))[: request.max_examples]
        order.sort()
        return part.images_at(order).numpy(), part.labels[order].numpy()

    def outputs(self, checkpoint: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features by extract_features; softmax of the model's logits; the images fed as the
        model was trained on them (the checkpoint's input statistics)."""
        import torch

        from transferlab.models import extract_features, load_checkpoint_model
        from transferlab.models.inputs import UNIT_STATS, prepare

        model, meta = load_checkpoint_model(checkpoint)
        stats = (meta["input_mean"], meta["input_std"]) if "input_mean" in meta else UNIT_STATS
        tensor = torch.from_numpy(np.ascontiguousarray(images))
        feats = extract_features(model, tensor, stats=stats).numpy()
        if getattr(model, "num_classes", None) == 0:  # trained without labels: no classifier
            return feats, np.empty((len(feats), 0))
        with torch.no_grad():
            logits = model(prepare(tensor, stats))
        return feats, torch.softmax(logits.float(), dim=1).numpy()


class OutputCache:
    """Arrays per key in a folder of .npz files (features per (checkpoint, dataset))."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.memory: dict[str, dict[str, np.ndarray]] = {}

    def get(self, key: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Cached arrays of ``key``, computed (and stored) on a miss."""
        if key in self.memory:
            return self.memory[key]
        path = None if self.folder is None else self.folder / f"{key}.npz"
        if path is not None and path.exists():
            try:
                with np.load(path) as data:
                    self.memory[key] = {k: data[k] for k in data.files}
                return self.memory[key]
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
        arrays = compute()
        if path is not None:
            atomic_write(path, lambda handle: np.savez(handle, **arrays))
        self.memory[key] = arrays
        return arrays


def _checkpoint_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


@dataclass
class ShiftContext:
    """Shared state of one shift analysis."""

    backend: Backend
    cache: OutputCache
    results_root: Path
    max_examples: int = DEFAULT_MAX_EXAMPLES
    seed: int = 0

    def data(self, request: DataRequest) -> dict[str, np.ndarray]:
        """Images and labels of a request (cached)."""

        def compute() -> dict[str, np.ndarray]:
            images, labels = self.backend.images(request)
            images, labels = np.asarray(images), np.asarray(labels)
            if len(labels) > request.max_examples:  # the cap holds whatever the backend does
                keep = np.sort(
                    np.random.default_rng(request.seed).permutation(len(labels))[
                        : request.max_examples
                    ]
                )
                images, labels = images[keep], labels[keep]
            return {"images": images, "labels": labels}

        return self.cache.get(f"data-{request.key()}", compute)

    def outputs(self, checkpoint: Path, request: DataRequest) -> dict[str, np.ndarray]:
        """Features and softmax of the checkpoint on the request's images (cached)."""
        key = hashlib.sha256(f"{_checkpoint_key(checkpoint)}|{request.key()}".encode())

        def compute() -> dict[str, np.ndarray]:
            feats, probs = self.backend.outputs(checkpoint, self.data(request)["images"])
            return {"features": np.asarray(feats, float), "probs": np.asarray(probs, float)}

        return self.cache.get(f"out-{key.hexdigest()[:24]}", compute)


def _representatives(df: pd.DataFrame) -> pd.DataFrame:
    """One completed fine-tuned record per (study, model, source, target), using the most
    referenced source checkpoint."""
    ft = df[df["stage"].eq("target") & df["init"].eq("source") & df["status"].eq("completed")]
    ft = ft.dropna(subset=["source_checkpoint"])
    counts = ft.groupby([*PAIR, "source_checkpoint"], dropna=False).size().rename("uses")
    top = counts.reset_index().sort_values("uses", ascending=False, kind="stable")
    top = top.drop_duplicates(PAIR)
    return top.merge(
        ft.drop_duplicates([*PAIR, "source_checkpoint"])[[*PAIR, "source_checkpoint", "path"]],
        on=[*PAIR, "source_checkpoint"],
    )


def _requests(record: Mapping[str, Any], max_examples: int, seed: int) -> tuple[DataRequest, ...]:
    ident = record.get("identity") or {}
    common = {
        "image_size": int(ident["image_size"]),
        "channels": int(ident["channels"]),
        "split_seed": int(record.get("split_seed") or 0),
        "max_examples": max_examples,
        "seed": seed,
    }
    source = (record.get("source") or {}).get("spec")
    target = (record.get("target") or {}).get("spec")
    if source is None or target is None:
        raise ValueError("record lacks the source or target spec")
    share = ident.get("target_pool_share")
    if share is None:  # a record made before the pool was split: both drew from all of it
        return DataRequest(spec=source, **common), DataRequest(spec=target, **common)
    from transferlab.data import source_pool

    return (
        DataRequest(spec=source, pool=source_pool(source, target), target_share=share, **common),
        DataRequest(spec=target, pool="target", target_share=share, **common),
    )


#: Columns of the shift table and of the estimator table.
SHIFT_COLUMNS = [*PAIR, "space", "status", *DISTANCES, "n", "dim", "gaussian_dim", "bandwidth"]
ESTIMATOR_COLUMNS = [*PAIR, "status", *ESTIMATORS, *BASELINES, "n"]


def _unavailable(exc: BaseException) -> dict[str, Any]:
    return {"status": "unavailable", "reason": first_line(exc)}


def _distances(x: np.ndarray, lx: np.ndarray, y: np.ndarray, ly: np.ndarray, seed: int) -> dict:
    """`pair_distances` as a table row; degenerate data gives an `unavailable` row."""
    try:
        return {"status": "ok", "reason": "", **pair_distances(x, lx, y, ly, seed)}
    except Exception as exc:  # degenerate data: report, never crash the analysis
        return _unavailable(exc)


def _pixel_distances(src: dict, tgt: dict, seed: int) -> dict[str, Any]:
    """Distances between the two samples' pixels, scaled to [0, 1]."""
    from transferlab.data.image_ops import PIXEL_MAX  # the one pixel scale (imports torch)

    x = src["images"].reshape(len(src["images"]), -1) / PIXEL_MAX
    y = tgt["images"].reshape(len(tgt["images"]), -1) / PIXEL_MAX
    return _distances(x, src["labels"], y, tgt["labels"], seed)


def _feature_rows(
    ctx: ShiftContext, checkpoint: Path, requests: tuple, src: dict, tgt: dict
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(feature-space distance row, estimator row) of one pair under its source checkpoint."""
    try:
        if not checkpoint.exists():
            raise FileNotFoundError(f"source checkpoint {checkpoint} not found")
        src_out, tgt_out = (ctx.outputs(checkpoint, r) for r in requests)
    except Exception as exc:  # external model code: report, never crash the analysis
        return _unavailable(exc), _unavailable(exc)
    distances = _distances(
        src_out["features"], src["labels"], tgt_out["features"], tgt["labels"], ctx.seed
    )
    try:
        probs = tgt_out["probs"] if tgt_out["probs"].shape[1] else None  # None: no classifier
        scores = all_estimators(tgt_out["features"], probs, tgt["labels"], ctx.seed)
        estimators = {"status": "ok", "reason": "", "n": len(tgt["labels"]), **scores}
    except Exception as exc:  # degenerate features: report
        estimators = _unavailable(exc)
    return distances, estimators


def analyze_shift(
    df: pd.DataFrame,
    *,
    results_root: str | Path,
    backend: Backend | None = None,
    cache_dir: str | Path | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Distances (shift table) and estimators (estimator table) for every (source, target) pair
    of the fine-tuned runs; features cached under ``cache_dir`` (default
    <results root>/cache/features). A pair that cannot be computed gets rows that say why."""
    root = Path(results_root)
    folder = Path(cache_dir) if cache_dir is not None else root / "cache" / "features"
    ctx = ShiftContext(backend or TorchBackend(), OutputCache(folder), root, max_examples, seed)
    shift_rows: list[dict[str, Any]] = []
    est_rows: list[dict[str, Any]] = []
    pixel_done: dict[tuple[str, str], dict[str, Any]] = {}
    for rep in _representatives(df).itertuples(index=False):
        base = {**{k: getattr(rep, k) for k in PAIR}, "checkpoint": rep.source_checkpoint}
        try:
            requests = _requests(json.loads(Path(rep.path).read_text()), max_examples, seed)
            src, tgt = (ctx.data(r) for r in requests)
        except Exception as exc:  # external data code: report, never crash the analysis
            shift_rows += [{**base, "space": space, **_unavailable(exc)} for space in SPACES]
            est_rows.append({**base, **_unavailable(exc)})
            continue
        pixel_key = tuple(r.key() for r in requests)
        if pixel_key not in pixel_done:
            pixel_done[pixel_key] = _pixel_distances(src, tgt, seed)
        checkpoint = root / str(rep.source_checkpoint)
        features, estimators = _feature_rows(ctx, checkpoint, requests, src, tgt)
        shift_rows += [
            {**base, "space": "pixel", **pixel_done[pixel_key]},
            {**base, "space": "feature", **features},
        ]
        est_rows.append({**base, **estimators})
    return (
        pd.DataFrame(shift_rows).reindex(columns=[*SHIFT_COLUMNS, "checkpoint", "reason"]),
        pd.DataFrame(est_rows).reindex(columns=[*ESTIMATOR_COLUMNS, "checkpoint", "reason"]),
    )
