"""Shift and estimator glue: cached outputs per (checkpoint, dataset), distances per pair,
unavailable pairs reported, rank relation to the realised transfer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers.simulate import SimulatedStudy, simulate_records, write_records

from transferlab.analysis import load_records
from transferlab.analysis.pipeline import analyze_frame
from transferlab.analysis.relation import estimator_agreement, shift_vs_gain
from transferlab.analysis.shift import DataRequest, TorchBackend, analyze_shift

N_IMAGES = 60


class FakeBackend:
    """Images: class-coloured noise shifted per dataset name; outputs: a fixed projection."""

    def __init__(self) -> None:
        self.image_calls = 0
        self.output_calls = 0

    def images(self, request: DataRequest):
        self.image_calls += 1
        name = request.spec["name"]
        offset = {"near": 0, "mid": 40, "far": 120}.get(name, 10)
        rng = np.random.default_rng(len(name))
        labels = np.arange(N_IMAGES) % 3
        images = rng.integers(0, 60, size=(N_IMAGES, 1, 4, 4)) + 20 * labels[:, None, None, None]
        return np.clip(images + offset, 0, 255).astype(np.uint8), labels

    def outputs(self, checkpoint: Path, images: np.ndarray):
        self.output_calls += 1
        flat = images.reshape(len(images), -1).astype(float) / 255
        feats = flat @ np.random.default_rng(0).normal(size=(flat.shape[1], 6))
        logits = feats[:, :4]
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return feats, probs


def _study(tmp_path: Path, with_checkpoints: bool = True) -> Path:
    spec = SimulatedStudy(
        sources={"near": 0.05, "mid": 0.0, "far": -0.05},
        targets=("digits",),
        target_sizes=(20, 100),
        freeze_depths=(0,),
        lrs=(1e-3,),
        seeds=3,
    )
    records = simulate_records(spec)
    study = write_records(records, tmp_path)
    if with_checkpoints:
        for r in records:
            if r["stage"] == "source":
                path = tmp_path / r["checkpoint"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"weights")
    return study


def test_distances_and_estimators_per_pair_with_cache(tmp_path: Path):
    study = _study(tmp_path)
    df = load_records(study)
    backend = FakeBackend()
    shift, est = analyze_shift(df, results_root=tmp_path, backend=backend, max_examples=40)
    assert set(shift["space"]) == {"pixel", "feature"}
    assert (shift["status"] == "ok").all(), shift["reason"].tolist()
    assert len(shift) == 6 and len(est) == 3
    pixel = shift[shift["space"].eq("pixel")].set_index("source")
    assert pixel.loc["near", "mmd2"] < pixel.loc["far", "mmd2"]
    assert pixel.loc["near", "frechet"] < pixel.loc["far", "frechet"]
    assert (shift["n"] == 40).all()
    assert est[["logme", "leep", "nce", "hscore", "knn_loo", "linear_probe"]].notna().all().all()
    cache = tmp_path / "cache" / "features"
    assert len(list(cache.glob("out-*.npz"))) == 6  # (3 checkpoints) x (source, target)
    calls = backend.output_calls
    again = FakeBackend()
    shift2, est2 = analyze_shift(df, results_root=tmp_path, backend=again, max_examples=40)
    assert again.output_calls == 0 and again.image_calls == 0 and calls == 6
    assert np.allclose(shift2["mmd2"], shift["mmd2"])
    results = analyze_frame(df, n_resamples=100)
    corr = shift_vs_gain(shift, results["cells"], n_resamples=100)
    row = corr[(corr["space"] == "pixel") & (corr["distance"] == "mmd2")].iloc[0]
    # three pairs: no rank correlation can be told from chance, so none is printed
    assert row["n"] == 3 and np.isnan(row["spearman"]) and np.isnan(row["spearman_p"])
    assert row["note"].startswith("not testable")
    joined, agreement = estimator_agreement(est, results["curves"], n_resamples=100)
    assert set(agreement["estimator"]) == {
        "logme",
        "leep",
        "nce",
        "hscore",
        "knn_loo",
        "linear_probe",
    }
    assert (agreement["n"] == 3).all() and len(joined) == 6
    assert agreement["kendall"].isna().all() and agreement["note"].str.startswith("not").all()


def test_missing_checkpoint_and_unknown_dataset_are_reported(tmp_path: Path):
    study = _study(tmp_path, with_checkpoints=False)
    df = load_records(study)
    shift, est = analyze_shift(df, results_root=tmp_path, backend=FakeBackend(), max_examples=30)
    feature = shift[shift["space"].eq("feature")]
    assert (feature["status"] == "unavailable").all()
    assert feature["reason"].str.contains("not found").all()
    assert (shift[shift["space"].eq("pixel")]["status"] == "ok").all()
    assert (est["status"] == "unavailable").all()
    # the real backend does not know these dataset names: reported, not raised
    shift, est = analyze_shift(df, results_root=tmp_path, cache_dir=tmp_path / "c2")
    assert (shift["status"] == "unavailable").all()
    assert shift["reason"].str.contains("unknown dataset").all()


def test_torch_backend_on_builtin_digits(tmp_path: Path):
    from transferlab.models import create_model, save_checkpoint

    model, _ = create_model("test_resnet", num_classes=10, in_chans=3, image_size=16)
    ckpt = tmp_path / "model.pt"
    save_checkpoint(
        model,
        ckpt,
        model_name="test_resnet",
        model_kwargs={},
        classes=tuple(str(i) for i in range(10)),
        image_size=16,
        in_chans=3,
    )
    backend = TorchBackend()
    images, labels = backend.images(DataRequest({"name": "digits"}, 16, 3, 0, 50))
    assert images.shape == (50, 3, 16, 16) and images.dtype == np.uint8 and len(labels) == 50
    feats, probs = backend.outputs(ckpt, images)
    assert feats.shape[0] == 50 and probs.shape == (50, 10)
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
