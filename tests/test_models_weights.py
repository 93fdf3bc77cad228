"""Initialisation: source checkpoints hand-over, local weight files, hub offline, corruption."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from transferlab.errors import ConfigError
from transferlab.models import (
    CheckpointError,
    create_model,
    load_checkpoint,
    load_checkpoint_model,
    save_checkpoint,
    validate_model,
)

SIZE = 32
SOURCE_CLASSES = ("zero", "one", "two", "three")
#: the hub checks must fail well inside this many seconds
FAST_FAIL_S = 10.0
ARCHS = {"test_resnet": {}, "test_vit": {"patch_size": 4}}
CLASSIFIER = {"test_resnet": "fc", "test_vit": "head"}


def _source(tmp_path: Path, name: str, in_chans: int = 1) -> tuple[torch.nn.Module, Path]:
    """A 'trained' source model (BN statistics moved) saved as a transferlab checkpoint."""
    torch.manual_seed(0)
    model, _ = create_model(
        name,
        num_classes=len(SOURCE_CLASSES),
        in_chans=in_chans,
        image_size=SIZE,
        **ARCHS[name],
    )
    model.train()
    with torch.no_grad():
        model(torch.rand(8, in_chans, SIZE, SIZE))
    path = tmp_path / "sources" / "model.pt"
    save_checkpoint(
        model,
        path,
        model_name=name,
        model_kwargs=ARCHS[name],
        classes=SOURCE_CLASSES,
        image_size=SIZE,
        in_chans=in_chans,
    )
    return model, path


def _target(name: str, path: Path, classes: tuple[str, ...], **extra):
    torch.manual_seed(1)  # a different init than the source: copied weights must come from it
    return create_model(
        name,
        num_classes=len(classes),
        in_chans=extra.pop("in_chans", 1),
        image_size=SIZE,
        init="source",
        init_path=str(path),
        target_classes=classes,
        **ARCHS[name],
        **extra,
    )


def _split(state: dict, name: str) -> tuple[dict, dict]:
    head = {k: v for k, v in state.items() if k.startswith(CLASSIFIER[name] + ".")}
    return {k: v for k, v in state.items() if k not in head}, head


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_source_checkpoint_keeps_head_for_the_same_label_space(tmp_path, name):
    source, path = _source(tmp_path, name)
    target, info = _target(name, path, SOURCE_CLASSES)
    assert info["init"] == "source" and info["head_reset"] is False
    want, got = source.state_dict(), target.state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want), "weights not restored bit-exactly"
    assert not list(path.parent.glob("*.tmp")), "temporary file left behind"


@pytest.mark.parametrize("name", sorted(ARCHS))
@pytest.mark.parametrize(
    "classes", [("a", "b", "c", "d"), ("a", "b", "c", "d", "e", "f", "g")], ids=["renamed", "more"]
)
def test_source_checkpoint_reinitialises_head_for_a_new_label_space(tmp_path, name, classes):
    source, path = _source(tmp_path, name)
    target, info = _target(name, path, classes)
    assert info["head_reset"] is True
    body_want, head_want = _split(source.state_dict(), name)
    body_got, head_got = _split(target.state_dict(), name)
    assert body_want.keys() == body_got.keys()
    assert all(torch.equal(body_want[k], body_got[k]) for k in body_want)
    weight = f"{CLASSIFIER[name]}.weight"
    assert head_got[weight].shape[0] == len(classes)
    if len(classes) == len(SOURCE_CLASSES):
        assert not torch.equal(head_got[weight], head_want[weight])


def test_source_without_target_classes_resets_the_head(tmp_path):
    _, path = _source(tmp_path, "test_resnet")
    _, info = create_model(
        "test_resnet", num_classes=4, in_chans=1, image_size=SIZE, init="source", init_path=path
    )
    assert info["head_reset"] is True


def test_source_checkpoint_of_another_model_is_refused(tmp_path):
    _, path = _source(tmp_path, "test_resnet")
    with pytest.raises(ConfigError, match="holds a test_resnet, not a test_vit"):
        _target("test_vit", path, SOURCE_CLASSES)
    with pytest.raises(ConfigError, match="holds a test_resnet"):
        validate_model("test_vit", init="source", init_path=str(path))


def test_truncated_checkpoint_is_detected(tmp_path):
    _, path = _source(tmp_path, "test_resnet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(path)) as err:
        load_checkpoint(path)
    assert isinstance(err.value, ConfigError) and "\n" not in str(err.value)
    with pytest.raises(CheckpointError):
        _target("test_resnet", path, SOURCE_CLASSES)


def test_corrupted_weights_are_detected_by_checksum(tmp_path):
    _, path = _source(tmp_path, "test_resnet")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["layer1.0.conv1.weight"].view(-1)[0] += 1.0
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)


def test_missing_or_foreign_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a transferlab checkpoint"):
        load_checkpoint(foreign)


def test_checkpoint_model_rebuilds_the_same_function(tmp_path):
    source, path = _source(tmp_path, "test_vit")
    model, meta = load_checkpoint_model(path)
    assert meta["classes"] == SOURCE_CLASSES and "state_dict" not in meta
    images = torch.rand(3, 1, SIZE, SIZE)
    source.eval()
    with torch.no_grad():
        assert torch.equal(model(images), source(images))


def _hub_like_file(tmp_path: Path, suffix: str) -> tuple[dict, Path]:
    """A 1000-class, 3-channel test_resnet state dict like the one timm keeps on the hub."""
    torch.manual_seed(3)
    model, _ = create_model("test_resnet", num_classes=1000, in_chans=3, image_size=SIZE)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = tmp_path / f"model{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return state, path


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_file_init_loads_weights_and_adapts_head_and_channels(tmp_path, suffix):
    state, path = _hub_like_file(tmp_path, suffix)
    model, info = create_model(
        "test_resnet", num_classes=10, in_chans=3, image_size=SIZE, init="file", init_path=str(path)
    )
    assert info["head_reset"] is True and info["weights"] == str(path)
    got = model.state_dict()
    assert got["fc.weight"].shape == (10, state["fc.weight"].shape[1])
    assert all(torch.equal(got[k], v) for k, v in state.items() if not k.startswith("fc."))
    same, info = create_model(
        "test_resnet", num_classes=1000, in_chans=3, image_size=SIZE, init="file", init_path=path
    )
    assert info["head_reset"] is False
    assert torch.equal(same.state_dict()["fc.weight"], state["fc.weight"])
    gray, _ = create_model(
        "test_resnet", num_classes=10, in_chans=1, image_size=SIZE, init="file", init_path=path
    )
    stem = gray.state_dict()["conv1.0.weight"]
    assert stem.shape[1] == 1
    assert torch.allclose(stem, state["conv1.0.weight"].sum(dim=1, keepdim=True))


def test_file_init_errors_name_the_file(tmp_path):
    missing = tmp_path / "absent.safetensors"
    with pytest.raises(ConfigError, match="absent.safetensors' does not exist"):
        create_model(
            "test_resnet",
            num_classes=2,
            in_chans=3,
            image_size=SIZE,
            init="file",
            init_path=str(missing),
        )
    with pytest.raises(ConfigError, match="absent.safetensors"):
        validate_model("test_resnet", init="file", init_path=str(missing))
    _, path = _hub_like_file(tmp_path, ".safetensors")
    with pytest.raises(ConfigError, match="does not fit test_vit"):
        create_model(
            "test_vit", num_classes=2, in_chans=3, image_size=SIZE, init="file", init_path=str(path)
        )
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError, match="garbage.safetensors' is unreadable"):
        create_model(
            "test_resnet",
            num_classes=2,
            in_chans=3,
            image_size=SIZE,
            init="file",
            init_path=str(garbage),
        )


def _assert_fast_hub_failure(monkeypatch, tmp_path, expected: str) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # nothing cached
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        create_model("test_resnet", num_classes=2, in_chans=3, image_size=SIZE, init="hub")
    with pytest.raises(ConfigError):
        validate_model("test_resnet", init="hub")
    assert time.monotonic() - start < FAST_FAIL_S
    message = str(err.value)
    assert "\n" not in message and expected in message
    assert "init=file init_path=/path/to/model.safetensors" in message


def test_hub_fails_fast_when_hf_hub_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _assert_fast_hub_failure(monkeypatch, tmp_path, "HF_HUB_OFFLINE")


def test_hub_fails_fast_when_the_endpoint_refuses(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # this machine; nothing listens
    _assert_fast_hub_failure(monkeypatch, tmp_path, "127.0.0.1:9")
