"""Domain adaptation stages (`method=source_only|dann|coral`): what they read, what they select
on, what they record.

Real Hydra composition and real Lightning training of source and adaptation stages; the kept
weights are read back from disk and evaluated here.
"""

from __future__ import annotations

import pytest
import torch

from transferlab.data import build_splits, source_pool
from transferlab.errors import ConfigError
from transferlab.models import create_model, load_checkpoint
from transferlab.models.inputs import prepare
from transferlab.store import run_id, stage_config
from transferlab.training.checks import check_run, data_options
from transferlab.training.run import train

#: A source model of digits adapted to rotated digits; no labelled target example.
RUN = [
    "init=source",
    "data@source=digits",
    "data@target=digits_rot45",
    "source_size=120",
    "target_size=0",
    "save_weights=true",
    "logger=[csv]",
    "threads=1",
]


def _trained(compose, *overrides: str) -> dict:
    record = train(compose(*RUN, *overrides))
    assert record["status"] == "completed", record["error"]
    return record


def _kept_model(tmp_path, record: dict) -> torch.nn.Module:
    model, _ = create_model("test_resnet", num_classes=10, in_chans=3, image_size=16)
    kept = load_checkpoint(tmp_path / "results" / record["checkpoint"])
    model.load_state_dict(kept["state_dict"])
    return model.eval()


def _scores(model: torch.nn.Module, split, stats) -> dict[str, float]:
    """Accuracy and mean negative log-likelihood (continuous: two sets never tie by chance)."""
    with torch.no_grad():
        logits = model(prepare(split.images, stats, torch.float32))
    nll = torch.nn.functional.cross_entropy(logits, split.labels)
    return {"acc": float((logits.argmax(1) == split.labels).float().mean()), "nll": float(nll)}


def _validation_sets(cfg) -> dict[str, object]:
    options = data_options(cfg)
    source = build_splits(cfg.source, pool=source_pool(cfg.source, cfg.target), **options)
    target = build_splits(cfg.target, pool="target", **options)
    return {"source": source.val, "oracle": target.val}


@pytest.mark.parametrize(
    "method, selection",
    [("source_only", "source"), ("dann", "source"), ("coral", "source"), ("dann", "oracle")],
)
def test_the_epoch_is_chosen_on_source_validation_unless_oracle_is_asked_for(
    compose, tmp_path, method, selection
):
    """Checked by weights: the kept model's scores on each validation set, computed here,
    equal the recorded validation scores on the set the selection names, not the other."""
    overrides = (f"method={method}", f"method.selection={selection}")
    record = _trained(compose, *overrides)
    sets = _validation_sets(compose(*RUN, *overrides))
    stats = tuple(tuple(v) for v in record["input_norm"].values())
    model = _kept_model(tmp_path, record)
    scores = {name: _scores(model, split, stats) for name, split in sets.items()}
    val = record["metrics"]["val"]
    assert val["acc"] == pytest.approx(scores[selection]["acc"], abs=1e-6)
    assert val["nll"] == pytest.approx(scores[selection]["nll"], rel=1e-4)
    other = "oracle" if selection == "source" else "source"
    assert val["nll"] != pytest.approx(scores[other]["nll"], rel=1e-3)
    curve = [row["acc"] for row in record["val_curve"]]
    assert record["best_epoch"] == max(range(len(curve)), key=curve.__getitem__)
    assert record["adaptation"]["selection"] == selection
    assert ("oracle" in record["adaptation"]["selected_on"]) == (selection == "oracle")
    assert f"selection={selection}" in record["method"]


def test_adaptation_never_reads_a_target_label(compose, tmp_path):
    """The same images with permuted labels (class names kept) as the target: DANN trains and
    selects bit-identical weights; only the test accuracy, on the other labels, differs."""
    runs = [
        _trained(compose, "method=dann", "data@source=digits_rot45", f"data@target={target}")
        for target in ("digits", "digits_label_permuted")
    ]
    first, second = (_kept_model(tmp_path, r).state_dict() for r in runs)
    for key, value in first.items():
        assert torch.equal(value, second[key]), key
    assert runs[0]["metrics"]["test"]["acc"] != runs[1]["metrics"]["test"]["acc"]


def test_what_each_method_reads_and_the_shift_it_records(compose, tmp_path):
    """source_only reads no unlabelled target example; semi-supervised adaptation labels
    `target_size` examples and adapts to the rest of the pool; the shift on the adapted
    features is recorded with the analysis's distances."""
    alone = _trained(compose, "method=source_only")["adaptation"]
    semi = _trained(compose, "method=coral", "target_size=20")
    counts = semi["adaptation"]
    pool = len(
        build_splits(compose(*RUN).target, pool="target", **data_options(compose(*RUN))).train
    )
    assert alone["unlabelled_target_examples"] == 0 and alone["labelled_target_examples"] == 0
    assert alone["source_examples"] == 120
    assert counts["labelled_target_examples"] == 20
    assert counts["unlabelled_target_examples"] == pool - 20
    assert semi["train_examples"] == 120 + pool
    for shift in (alone["shift"], counts["shift"]):
        assert shift["n"] > 0 and shift["mmd2"] == shift["mmd2"]  # a number, not NaN
        assert set(shift) >= {"mmd2", "mmd_p", "proxy_a", "frechet", "otdd"}


def test_the_identity_of_an_adaptation_run(compose):
    """The selection rule and the adaptation settings are the run's; the budget validation
    settings, which an adaptation stage does not use, are not."""

    def rid(*overrides: str) -> str:
        return run_id(stage_config(compose(*RUN, "method=dann", *overrides), "target"))

    assert rid() == rid("val_protocol=pool") == rid("val_share=0.5")
    assert len({rid(), rid("method.selection=oracle"), rid("method.weight=0.5")}) == 3


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["method=coral", "init=scratch"], ["method=coral", "init=source", "init=scratch"]),
        (["method=finetune"], ["target_size=0", "method=finetune", "source_only | dann | coral"]),
        (["method=source_only", "method.selection=test"], ["method.selection 'test'", "oracle"]),
        (["method=dann", "target_size=null"], ["target_size=None", "none is left unlabelled"]),
        (["method=dann", "method.unlabelled_size=100000"], ["unlabelled_size=100000", "exceeds"]),
        (["method=dann", "method.weight=-1"], ["method.weight=-1", ">= 0"]),
    ],
)
def test_what_an_adaptation_needs_is_checked_before_training(compose, overrides, expected):
    """The checks every run makes before training (the command line prints the message as one
    line and exits 2: tests/test_bad_input.py shows it for another label space)."""
    with pytest.raises(ConfigError) as error:
        check_run(compose(*RUN, *overrides))
    message = str(error.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message, message
