"""Fine-tuning methods (`transferlab.methods`) change exactly what they should, on three model
families (a ResNet, a ViT, a ConvNeXt) trained by a real Trainer, and their penalties and
learning rates match hand computations."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from transferlab.methods import BSS, L2SP, Context, LoRA
from transferlab.models import create_model, depth_groups
from transferlab.models.weights import classifier_parameters
from transferlab.store import stage_config
from transferlab.training.fit import build_module, fit_stage
from transferlab.training.run import _training_data, _with_run_info

MODELS = ["test_resnet", "test_vit", "test_convnext"]
RUN = ["init=scratch", "logger=[csv]", "train.epochs=2", "target_size=40", "image_size=32"]


def _stage(compose, model: str, *overrides: str):
    """A target stage of `model` with the method of `overrides` (set on the stage view: a
    scratch run's own config has no method; the weights' origin does not matter here)."""
    cfg = compose(*RUN, f"model={model}", *overrides)
    stage = stage_config(cfg, "target")
    stage.method = cfg.method
    return stage


def _state(module: L.LightningModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.model.state_dict().items()}


class Snapshots(L.Callback):
    """The model's state when training starts (`initial`) and after every training epoch."""

    def __init__(self) -> None:
        self.initial: dict[str, torch.Tensor] = {}
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.initial = _state(module)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.states.append(_state(module))


def _fit(stage, tmp_path: Path, monkeypatch, *extra: L.Callback):
    """Fit the stage with the real callbacks plus `Snapshots` and `extra`; (result, snapshots)."""
    import transferlab.training.fit as fit

    run_dir = tmp_path / "run"
    stage = _with_run_info(stage, "m", run_dir)
    splits, train = _training_data(stage)
    snapshots = Snapshots()
    real = fit.build_callbacks
    added = {"snap": snapshots, **{f"extra{i}": c for i, c in enumerate(extra)}}
    monkeypatch.setattr(fit, "build_callbacks", lambda c: {**real(c), **added})
    return fit_stage(stage, splits, train, run_dir), snapshots


def _group_keys(model: nn.Module, state: dict, index: int) -> list[str]:
    """State keys (parameters and buffers) of depth group `index`."""
    params = depth_groups(model)[index][1]
    owners = {p.rsplit(".", 1)[0] for p in params}
    return [k for k in state if k.rsplit(".", 1)[0] in owners]


@pytest.mark.parametrize("model", MODELS)
def test_surgical_trains_only_the_chosen_groups_and_the_head(compose, tmp_path, monkeypatch, model):
    stage = _stage(compose, model, "method=surgical", "method.tune_stages=[1]")
    result, snaps = _fit(stage, tmp_path, monkeypatch)
    net, before, after = result.model, snaps.initial, result.model.state_dict()
    count = len(depth_groups(net))
    for index in range(count):
        keys = _group_keys(net, after, index)
        changed = [
            k for k in keys if after[k].is_floating_point() and not torch.equal(after[k], before[k])
        ]
        if index in (1, count - 1):
            assert changed, f"group {index} should have trained"
        else:
            assert not changed, f"group {index} should be bit-identical: {changed[:3]}"
    if model == "test_resnet":  # the comparison covered frozen BatchNorm statistics
        assert any("running_mean" in k for k in _group_keys(net, after, 0))


@pytest.mark.parametrize("model", MODELS)
def test_lora_keeps_base_weights_and_trains_adapters_and_head(
    compose, tmp_path, monkeypatch, model
):
    result, snaps = _fit(_stage(compose, model, "method=lora"), tmp_path, monkeypatch)
    before, after = snaps.initial, result.model.state_dict()
    head = set(_group_keys(result.model, after, len(depth_groups(result.model)) - 1))
    adapters = [k for k in after if ".lora_" in k]
    assert adapters
    assert all(not before[k].any() for k in adapters if "lora_B" in k)  # adapters start at 0
    assert any(after[k].any() for k in adapters if "lora_B" in k)  # and trained
    for key, value in after.items():
        if ".lora_" not in key and key not in head:
            assert torch.equal(value, before[key]), f"{key} changed"  # BatchNorm stats too
    assert any(not torch.equal(after[k], before[k]) for k in head if after[k].is_floating_point())
    base = sum(v.numel() for k, v in before.items() if ".lora_" not in k)
    assert result.trainable_parameters < base


@pytest.mark.parametrize(
    ("model", "method"), [(m, "lp_ft") for m in MODELS] + [("test_convnext", "lp_ft_shared")]
)
def test_lp_ft_probes_the_classifier_alone_then_tunes_everything(
    compose, tmp_path, model, method, monkeypatch
):
    stage = _stage(compose, model, f"method={method}", "method.probe_share=0.5")
    result, snaps = _fit(stage, tmp_path, monkeypatch)
    net, before, (probe, tuned) = result.model, snaps.initial, snaps.states
    params = dict(net.named_parameters())
    classifier = classifier_parameters(net)  # ConvNeXt's head group also holds head.norm
    assert [(p["phase"], p["epochs"], p["trainable_parameters"]) for p in result.phases] == [
        ("linear_probe", 1, sum(params[n].numel() for n in classifier)),
        ("finetune", 1, sum(p.numel() for p in params.values())),
    ]
    moved = {
        k for k in probe if probe[k].is_floating_point() and not torch.equal(probe[k], before[k])
    }
    assert moved == classifier  # the rest (a neck, BatchNorm statistics) stayed where it was
    body = [k for k in probe if k not in classifier and probe[k].is_floating_point()]
    assert any(not torch.equal(tuned[k], probe[k]) for k in body if "running_" not in k)


@pytest.mark.parametrize("model", MODELS)
def test_layer_decay_learning_rates_match_a_hand_computation(compose, model):
    stage = _stage(compose, model, "method=layer_decay", "method.decay=0.5", "train.lr=0.01")
    splits, _ = _training_data(_with_run_info(stage, "m", Path("unused")))
    module, _ = build_module(stage, splits, None)
    optimizer = module.configure_optimizers()["optimizer"]
    groups = depth_groups(module.model)
    n = len(groups)
    want = {i: 0.01 * 0.5 ** (n - 1 - i) for i in range(n)}  # head: 0.01, stem: 0.01 / 2^(n-1)
    by_param = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    params = dict(module.model.named_parameters())
    for index, (_, names) in enumerate(groups):
        for name in names:
            assert by_param[id(params[name])] == pytest.approx(want[index]), name
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(params)


class Tiny(nn.Module):
    """A body and a classifier (two depth groups: body, head)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(2, 2, bias=False)
        self.fc = nn.Linear(2, 1, bias=False)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def test_l2sp_penalty_matches_a_hand_computation():
    model = Tiny()
    with torch.no_grad():
        model.body.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model.fc.weight.copy_(torch.tensor([[1.0, -2.0]]))
    method = L2SP(alpha=0.5, beta=0.25)
    method.setup(model, Context(freeze_depth=0, epochs=1, head_reset=True))
    with torch.no_grad():  # the body moves by (0.1, -0.2, 0, 0.3) from where it started
        model.body.weight.add_(torch.tensor([[0.1, -0.2], [0.0, 0.3]]))
    near = 0.1**2 + 0.2**2 + 0.3**2  # |w - w_start|^2 over the transferred body
    far = 1.0**2 + 2.0**2  # |w|^2 over the new head
    assert float(method.penalty(model, None)) == pytest.approx(0.5 / 2 * near + 0.25 / 2 * far)
    kept = L2SP(alpha=0.5, beta=0.25)  # a kept head is transferred: pulled to its start
    kept.setup(model, Context(freeze_depth=0, epochs=1, head_reset=False))
    assert float(kept.penalty(model, None)) == pytest.approx(0.0)


def test_bss_penalty_is_the_smallest_squared_singular_values():
    features = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    rotation = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))[0]
    rotated = features @ rotation  # the same singular values: 3, 2, 1
    assert float(BSS(eta=0.1, k=1).penalty(None, rotated)) == pytest.approx(0.1 * 1.0)
    assert float(BSS(eta=0.1, k=2).penalty(None, rotated)) == pytest.approx(0.1 * (1.0 + 4.0))


class PoolCalls(L.Callback):
    """Counts training batches and the model's global pooling (the start of timm's
    `forward_head`) run in training mode."""

    def __init__(self) -> None:
        self.batches = self.pools = 0

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        def count(pool: nn.Module, *_: object) -> None:
            self.pools += pool.training

        module.model.global_pool.register_forward_hook(count)

    def on_train_batch_end(self, *_: object) -> None:
        self.batches += 1


def test_bss_trains_with_its_penalty_on_the_features_of_one_forward_pass(
    compose, tmp_path, monkeypatch
):
    # dropout before the classifier: a second pass would draw another mask
    overrides = ("method=bss", "method.eta=0.01", "+model.kwargs.drop_rate=0.5")
    calls = PoolCalls()
    result, _ = _fit(_stage(compose, "test_resnet", *overrides), tmp_path, monkeypatch, calls)
    assert result.status == "completed"
    assert calls.batches > 0 and calls.pools == calls.batches  # once per training step
    metrics = (tmp_path / "run" / "csv").rglob("metrics.csv")
    header = next(iter(metrics)).read_text().splitlines()[0]
    assert "train/penalty" in header


def test_l2sp_pulls_a_transferred_neck_to_its_start_and_decays_only_the_new_classifier():
    model, _ = create_model("test_convnext", num_classes=3, in_chans=3, image_size=32)
    assert "head.norm.weight" in depth_groups(model)[-1][1]  # a neck in the head group
    method = L2SP(alpha=0.5, beta=0.25)
    method.setup(model, Context(freeze_depth=0, epochs=1, head_reset=True))
    with torch.no_grad():
        model.head.norm.weight.add_(0.1)  # the transferred neck moves by 0.1 per weight
    near = 0.1**2 * model.head.norm.weight.numel()
    fc = model.get_classifier()
    far = float(fc.weight.pow(2).sum() + fc.bias.pow(2).sum())  # the re-initialised classifier
    assert float(method.penalty(model, None)) == pytest.approx(0.5 / 2 * near + 0.25 / 2 * far)


def test_lora_adapts_every_linear_and_plain_conv_outside_the_head():
    from transferlab.methods.lora import auto_targets

    model, _ = create_model("test_convnext", num_classes=3, in_chans=3, image_size=32)
    targets = auto_targets(model)
    assert not any(t.startswith("head") for t in targets)
    kinds = {type(m).__name__ for n, m in model.named_modules() if n in targets}
    assert kinds == {"Linear", "Conv2d"}
    assert all(model.get_submodule(t).groups == 1 for t in targets if "conv" in t.lower())
    copy_ = copy.deepcopy(model)
    LoRA().setup(copy_, Context(freeze_depth=0, epochs=1, head_reset=True))
    trainable = {n for n, p in copy_.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or n.startswith("head.") for n in trainable)
