"""The GPU path (`training/placement.py`): examples kept on a single GPU, NHWC layout, bf16.

This machine has no GPU. What runs here: the layout and precision paths on the CPU with a real
Trainer (same numbers as the default path, NHWC weights), the placement rule, and the move of
a run's examples (to the `meta` device, which holds shapes without memory). The last test runs a
real run on a GPU where one exists and is skipped elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers.probes import FirstBatch

from transferlab.data import DatasetSplits, ImageTensors
from transferlab.models import create_model
from transferlab.store import stage_config
from transferlab.training.fit import fit_stage
from transferlab.training.placement import data_device, place_data, wants_channels_last
from transferlab.training.run import _training_data, _with_run_info

RUN = ["init=scratch", "logger=[csv]", "train.epochs=2", "target_size=40"]
PROBE = "helpers.probes.FirstBatch"


def _fit(compose, tmp_path: Path, name: str, *overrides: str, depth: int = 0):
    stage = stage_config(compose(*RUN, *overrides), "target")
    stage.freeze_depth = depth
    run_dir = tmp_path / name
    stage = _with_run_info(stage, name, run_dir)
    splits, train = _training_data(stage)
    result = fit_stage(stage, splits, train, run_dir)
    result.test_examples = len(splits.test)
    return result


def _assert_same_metrics(got, want, nll_tolerance: float) -> None:
    """The same run up to float rounding: the validation losses of every epoch agree within
    `nll_tolerance`, and the test accuracy within one example (rounding that grows over the
    steps can flip an example that sits on a decision boundary)."""
    for a, b in zip(got.val_curve, want.val_curve, strict=True):
        assert a["nll"] == pytest.approx(b["nll"], abs=nll_tolerance)
    one_example = 1 / want.test_examples
    assert got.test["acc"] == pytest.approx(want.test["acc"], abs=one_example + 1e-6)
    assert got.test["nll"] == pytest.approx(want.test["nll"], abs=nll_tolerance)


@pytest.mark.parametrize("depth", [0, 3])  # 3: a frozen prefix's 4-d outputs are NHWC too
def test_channels_last_trains_nhwc_with_the_same_numbers(compose, tmp_path, depth):
    nhwc = _fit(compose, tmp_path, f"nhwc{depth}", "channels_last=true", depth=depth)
    plain = _fit(compose, tmp_path, f"nchw{depth}", "channels_last=false", depth=depth)
    conv = next(m for m in nhwc.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert conv.weight.shape[-1] > 1  # a 1x1 kernel is both layouts at once
    _assert_same_metrics(nhwc, plain, nll_tolerance=5e-3)


def test_bf16_mixed_precision_runs_and_stays_close(compose, tmp_path):
    """bf16 autocast (the gpu preset's precision) on the CPU: the run completes, its metrics
    are computed in float32, and they stay near the float32 run's.

    On some CPUs with native bf16 instructions, oneDNN's bf16 convolution backward gives
    non-finite gradients, in plain PyTorch too (seen 2026-12-06 on an AVX-512 BF16 Xeon with
    torch 2.14.1; fine with oneDNN off or `ONEDNN_MAX_CPU_ISA=AVX2`). There the run must be
    recorded as diverged, not crash, and the same run with oneDNN off is compared instead."""
    bf16 = _fit(compose, tmp_path, "bf16", "trainer.precision=bf16-mixed")
    if bf16.status == "diverged":
        assert "non-finite training loss" in bf16.error
        with torch.backends.mkldnn.flags(enabled=False):
            bf16 = _fit(compose, tmp_path, "bf16_plain", "trainer.precision=bf16-mixed")
    fp32 = _fit(compose, tmp_path, "fp32")
    assert bf16.status == "completed"
    assert bf16.test["acc"] == pytest.approx(fp32.test["acc"], abs=0.1)


def test_auto_layout_only_on_a_gpu():
    resnet, _ = create_model("test_resnet", num_classes=3, in_chans=3, image_size=16)
    assert not wants_channels_last("auto", resnet, torch.device("cpu"))
    assert wants_channels_last("auto", resnet, torch.device("cuda", 0))
    assert not wants_channels_last("auto", torch.nn.Linear(4, 2), torch.device("cuda", 0))
    assert wants_channels_last(True, resnet, torch.device("cpu"))
    assert not wants_channels_last(False, resnet, torch.device("cuda", 0))


def _trainer(device: str, devices: int = 1) -> SimpleNamespace:
    """Stands in for a Trainer on hardware this machine lacks (only the fields read)."""
    strategy = SimpleNamespace(root_device=torch.device(device))
    return SimpleNamespace(strategy=strategy, num_devices=devices, num_nodes=1)


def test_data_stay_on_the_host_unless_one_gpu_runs():
    assert data_device(_trainer("cuda:1"), data_on_device=True) == torch.device("cuda", 1)
    assert data_device(_trainer("cuda:0"), data_on_device=False) is None
    assert data_device(_trainer("cuda:0", devices=2), data_on_device=True) is None  # DDP
    assert data_device(_trainer("cpu"), data_on_device=True) is None


def _examples(n: int) -> ImageTensors:
    images = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    return ImageTensors(images, torch.zeros(n, dtype=torch.long), torch.arange(n))


def test_a_runs_examples_move_and_the_pool_stays():
    splits = DatasetSplits(_examples(8), _examples(3), _examples(5), ("a",), "toy")
    moved, train = place_data(splits, _examples(4), torch.device("meta"))
    for split in (moved.val, moved.test, train):
        assert {t.device.type for t in (split.images, split.labels, split.origin)} == {"meta"}
    assert moved.train.images.device.type == "cpu"  # the pool is not read by the run
    assert place_data(splits, train, None) == (splits, train)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_run_keeps_data_on_the_device(compose, tmp_path, monkeypatch):
    import transferlab.training.fit as fit

    placed = []

    def place_and_note(*args):
        splits, train = place_data(*args)
        placed.append(train.images.device.type)
        return splits, train

    monkeypatch.setattr(fit, "place_data", place_and_note)  # the real function, observed
    FirstBatch.take()
    gpu = _fit(compose, tmp_path, "gpu", "trainer=gpu", f"+callbacks.probe._target_={PROBE}")
    assert placed == ["cuda"]
    assert FirstBatch.take()["device"] == "cuda"  # trained there (Lightning's teardown then
    cpu = _fit(compose, tmp_path, "cpu")  # moves a single-device model back to the CPU)
    conv = next(m for m in gpu.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)  # auto on a GPU
    assert gpu.test["acc"] == pytest.approx(cpu.test["acc"], abs=0.1)  # bf16, other kernels
