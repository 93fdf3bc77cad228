"""Input pixels: [0, 1], then standardised with the model's pretrained statistics (timm's data
config), the same for every arm; the statistics travel with a source checkpoint, into the record
and into the analysis' feature extraction."""

from __future__ import annotations

import pytest
import timm
import torch

from transferlab.models import create_model, extract_features, save_checkpoint
from transferlab.models.inputs import UNIT_STATS, input_stats, prepare
from transferlab.training.run import train


def test_statistics_come_from_the_models_data_config():
    resnet = timm.create_model("resnet10t", num_classes=3)
    config = timm.data.resolve_data_config({}, model=resnet)
    assert input_stats(resnet, 3) == (tuple(config["mean"]), tuple(config["std"]))
    mean, std = input_stats(resnet, 1)  # one channel: the mean of the RGB statistics
    assert mean == pytest.approx((sum(config["mean"]) / 3,))
    assert std == pytest.approx((sum(config["std"]) / 3,))
    assert input_stats(resnet, 3, "unit") == UNIT_STATS


def test_prepare_scales_then_standardises():
    images = torch.tensor([[[[0, 255]], [[51, 102]], [[255, 0]]]], dtype=torch.uint8)
    stats = ((0.5, 0.2, 0.5), (0.5, 0.1, 0.25))
    out = prepare(images, stats)
    expected = (images.float() / 255 - torch.tensor(stats[0])[:, None, None]) / torch.tensor(
        stats[1]
    )[:, None, None]
    assert torch.allclose(out, expected)
    assert torch.allclose(prepare(images, UNIT_STATS), images.float() / 255)


def test_run_records_its_statistics_and_source_checkpoint_carries_them(compose, tmp_path):
    from transferlab.analysis.shift import TorchBackend

    record = train(compose("init=scratch"))
    model = timm.create_model("test_resnet", num_classes=10)
    mean, std = input_stats(model, 3)
    assert record["input_norm"] == {"mean": list(mean), "std": list(std)}
    unit = train(compose("init=scratch", "input_norm=unit"))
    assert unit["input_norm"] == {"mean": [0.0], "std": [1.0]}
    assert unit["run_id"] != record["run_id"]
    # a checkpoint's features are extracted with the checkpoint's statistics
    net, _ = create_model("test_resnet", num_classes=10, in_chans=3, image_size=16)
    path = tmp_path / "model.pt"
    save_checkpoint(
        net,
        path,
        model_name="test_resnet",
        model_kwargs={},
        classes=tuple(str(i) for i in range(10)),
        image_size=16,
        in_chans=3,
        input_stats=(mean, std),
    )
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    feats, _ = TorchBackend().outputs(path, images.numpy())
    expected = extract_features(net.eval(), images, stats=(mean, std))
    assert torch.allclose(torch.from_numpy(feats), expected, atol=1e-5)
    assert not torch.allclose(expected, extract_features(net, images), atol=1e-3)


def test_a_pretrained_tag_brings_its_own_statistics():
    """Hub weights are named by their tag; every arm builds that name, so all are fed alike."""
    imagenet, _ = create_model("resnet18.a1_in1k", num_classes=10, in_chans=3, image_size=32)
    assert input_stats(imagenet, 3) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    augreg, _ = create_model(
        "vit_tiny_patch16_224.augreg_in21k", num_classes=10, in_chans=3, image_size=32
    )
    assert input_stats(augreg, 3) == ((0.5,) * 3, (0.5,) * 3)


def test_file_weights_are_fed_images_standardised_with_their_models_statistics(compose, tmp_path):
    from helpers.probes import FirstBatch

    torch.manual_seed(0)
    hub_like, _ = create_model("resnet10t", num_classes=1000, in_chans=3, image_size=16)
    path = tmp_path / "weights.pth"
    torch.save(hub_like.state_dict(), path)
    FirstBatch.take()
    record = train(
        compose(
            "model.name=resnet10t",
            "init=file",
            f"init_path={path}",
            "train.epochs=1",
            "+callbacks.probe._target_=helpers.probes.FirstBatch",
        )
    )
    seen = FirstBatch.take()
    assert record["status"] == "completed" and record["init"] == "file"
    channels = seen["inputs"].shape[1]
    mean, std = input_stats(timm.create_model("resnet10t"), channels)
    assert mean != UNIT_STATS[0] * channels
    assert record["input_norm"] == {"mean": list(mean), "std": list(std)}
    assert seen["stats"] == (mean, std)
    # digits have black background pixels: the smallest input of each channel is (0 - mean) / std
    smallest = seen["inputs"].amin(dim=(0, 2, 3))
    assert torch.allclose(smallest, -torch.tensor(mean) / torch.tensor(std), atol=1e-6)
