"""Source stages pre-trained without labels (`pretrain/objective`: denoising, rotation, simclr).

Real Hydra composition and real Lightning training of source and target stages; the source
checkpoints are read back from disk.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from transferlab.analysis.ranking import candidate_outputs
from transferlab.analysis.records import flatten_record
from transferlab.errors import ConfigError
from transferlab.models import create_model, load_checkpoint
from transferlab.store import read_record, run_id, stage_config
from transferlab.store.schema import record_problem
from transferlab.training.checks import check_run
from transferlab.training.run import train

UNSUPERVISED = ("denoising", "rotation", "simclr")
#: Two sources with the same images and other labels (a permutation of the classes).
SAME_IMAGES = ("digits", "digits_label_permuted")
RUN = ["init=source", "source_size=120", "freeze_depth=0", "logger=[csv]", "threads=1"]


def _source_weights(compose, tmp_path, objective: str, source: str) -> tuple[dict, dict]:
    """(target record, source checkpoint) of a transfer run from `source`."""
    cfg = compose(*RUN, f"pretrain/objective={objective}", f"data@source={source}")
    record = train(cfg)
    assert record["status"] == "completed", record["error"]
    return record, load_checkpoint(tmp_path / "results" / record["source_checkpoint"])


@pytest.mark.parametrize("objective", UNSUPERVISED)
def test_a_source_without_labels_trains_the_same_weights_whatever_its_labels(
    compose, tmp_path, objective
):
    (_, first), (_, second) = (
        _source_weights(compose, tmp_path, objective, s) for s in SAME_IMAGES
    )
    assert first["state_dict"].keys() == second["state_dict"].keys()
    for key, value in first["state_dict"].items():
        assert torch.equal(value, second["state_dict"][key]), key


def test_a_supervised_source_does_read_its_labels(compose, tmp_path):
    """The counterpart that shows the comparison above can tell: other labels, other weights."""
    (_, first), (_, second) = (
        _source_weights(compose, tmp_path, "supervised", s) for s in SAME_IMAGES
    )
    assert any(not torch.equal(v, second["state_dict"][k]) for k, v in first["state_dict"].items())


@pytest.mark.parametrize("objective", UNSUPERVISED)
def test_only_the_body_is_handed_over_and_the_epoch_is_chosen_on_the_objective(
    compose, tmp_path, objective
):
    record, checkpoint = _source_weights(compose, tmp_path, objective, "digits_rot45")
    body, _ = create_model("test_resnet", num_classes=0, in_chans=3, image_size=16)
    assert checkpoint["state_dict"].keys() == body.state_dict().keys()  # no decoder, no head
    assert checkpoint["classes"] == ()
    assert record["head_reset"] is True  # same class names as the source, still a new head
    results = tmp_path / "results" / "default" / "records"
    source = read_record(results / f"{record['source_run_id']}.json")
    losses = [row["loss"] for row in source["val_curve"]]
    assert len(losses) == 2 and "acc" not in source["val_curve"][0]
    assert source["best_epoch"] == min(range(len(losses)), key=losses.__getitem__)
    assert source["metrics"]["val"]["loss"] == losses[source["best_epoch"]]
    assert source["source"]["objective"].startswith(objective)
    assert record_problem(source) is None  # its loss, not an accuracy, makes it complete ...
    damaged = {**source, "metrics": {**source["metrics"], "val": {}}}
    assert record_problem(damaged) == "completed, but metrics.val.loss is None"  # ... and whole
    row = flatten_record(json.loads((results / f"{record['run_id']}.json").read_text()))
    assert row["source"] == f"digits+rotate(degrees=45), {source['source']['objective']}"
    assert "objective" not in row["source_variant_key"]
    # as a candidate: features for LogME and the rest, no source classifier for LEEP and NCE
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    features, probs = candidate_outputs(dict(record), tmp_path / "results", images)
    assert features.shape[0] == 5 and probs.shape == (5, 0)


def test_the_objective_is_part_of_the_source_identity_and_supervised_changes_no_id(compose):
    def ids(*overrides: str) -> tuple[str, str]:
        cfg = compose("init=source", *overrides)
        source = run_id(stage_config(cfg, "source"))
        return source, run_id(stage_config(cfg, "target", source))

    default = compose("init=source")
    before = OmegaConf.to_container(default)
    del before["pretrain"]["objective"]  # a config from before objectives existed
    old = OmegaConf.create(before)
    source = run_id(stage_config(old, "source"))
    assert ids() == (source, run_id(stage_config(old, "target", source)))
    assert ids("pretrain/objective=supervised") == ids()
    variants = [
        ids(),
        ids("pretrain/objective=denoising"),
        ids("pretrain/objective=denoising", "pretrain.objective.strength=0.5"),
        ids("pretrain/objective=denoising", "pretrain.objective.corruption=mask"),
        ids("pretrain/objective=rotation"),
    ]
    assert len({source for source, _ in variants}) == len(variants)
    assert len({target for _, target in variants}) == len(variants)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("pretrain.objective.corruption=blur", "corruption='blur' is not one of noise, mask"),
        ("pretrain.objective.strength=0", "strength=0 must be > 0"),
        ("pretrain.objective.strength=2", None),  # noise of std 2 is allowed ...
    ],
)
def test_bad_objective_settings_are_one_line_before_training(compose, override, named):
    cfg = compose("init=source", "pretrain/objective=denoising", override)
    if named is None:
        check_run(cfg)
        mask = compose("init=source", "pretrain/objective=denoising", override)
        mask.pretrain.objective.corruption = "mask"  # ... a masked share of 2 is not
        with pytest.raises(ConfigError, match=r"strength=2 must be in \(0, 1\]"):
            check_run(mask)
        return
    with pytest.raises(ConfigError) as err:
        check_run(cfg)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_nt_xent_equals_its_value_by_hand():
    """Two images whose two views agree exactly, at temperature 1: each view's similarities to
    the three others are 0, 1 (its positive) and 0, so the loss is log((e + 2) / e)."""
    from transferlab.objectives.contrastive import nt_xent

    views = torch.tensor([[1.0, 0.0], [0.0, 3.0]])  # normalised inside: length does not count
    assert nt_xent(views, views, 1.0).item() == pytest.approx(math.log((math.e + 2) / math.e))
    swapped = nt_xent(views, views.flip(0), 1.0)  # each positive now the other image's view
    assert swapped.item() == pytest.approx(math.log((math.e + 2) / 1.0))


def test_an_untrained_source_is_the_model_as_its_seed_initialised_it(compose, tmp_path):
    """`pretrain.epochs=0`: a random-init candidate. Its checkpoint holds the weights the
    source seed gives a fresh model (classifier included), its record says nothing was chosen
    on validation, and it is another source than one epoch of training."""
    import lightning as L

    record, checkpoint = _source_weights(compose, tmp_path, "supervised", "digits")
    cfg = compose(*RUN, "data@source=digits", "pretrain.epochs=0", "pretrain.seed=3")
    untrained = train(cfg)
    assert untrained["status"] == "completed", untrained["error"]
    assert untrained["source_run_id"] != record["source_run_id"]
    weights = load_checkpoint(tmp_path / "results" / untrained["source_checkpoint"])["state_dict"]
    L.seed_everything(3, verbose=False)
    fresh, _ = create_model("test_resnet", num_classes=10, in_chans=3, image_size=16)
    assert weights.keys() == fresh.state_dict().keys()
    for key, value in fresh.state_dict().items():
        assert torch.equal(weights[key], value), key
    trained = checkpoint["state_dict"]
    assert any(not torch.equal(v, trained[k]) for k, v in weights.items())
    results = tmp_path / "results" / "default" / "records"
    source = read_record(results / f"{untrained['source_run_id']}.json")
    assert (source["epochs"], source["val_curve"], source["best_epoch"]) == (0, [], None)
    assert 0 <= source["metrics"]["val"]["acc"] <= 1  # the initial weights, validated once
    assert record_problem(source) is None  # a complete record: the analysis reads it


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["pretrain.epochs=-1"], "pretrain.epochs must be >= 0, got -1"),
        (["train.epochs=0"], "train.epochs must be >= 1, got 0"),  # the target stage trains
        (["pretrain.epochs=0", "pretrain/objective=simclr"], "use it with pretrain/objective="),
    ],
)
def test_untrained_source_settings_are_one_line_before_training(compose, overrides, named):
    with pytest.raises(ConfigError) as err:
        check_run(compose("init=source", *overrides))
    assert named in str(err.value) and "\n" not in str(err.value)
