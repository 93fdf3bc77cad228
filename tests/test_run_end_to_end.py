"""One transfer run end to end through the real Hydra config, Lightning Trainer and loggers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from helpers.wandb_files import finished, summarize

from transferlab.models import load_checkpoint
from transferlab.store import RECORD_SCHEMA, ResultsStore
from transferlab.training.run import train

#: One worker runs this file: its module fixture is built once.
pytestmark = pytest.mark.xdist_group("test_run_end_to_end")

REPO = Path(__file__).resolve().parents[1]


def _records(results: Path, study: str = "default") -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / study / "records").glob("*.json"))]


def _wandb_file(run_dir: Path) -> Path:
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert files, f"no offline W&B run under {run_dir}"
    return finished(files[-1])


@pytest.fixture(scope="module")
def finetune(tmp_path_factory):
    """The default run (source stage + fine-tune), shrunk for speed."""
    from conftest import CONF_DIR, FAST
    from hydra import compose, initialize_config_dir

    import transferlab.cli.run  # noqa: F401

    results = tmp_path_factory.mktemp("e2e") / "results"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        fast = [arg for arg in FAST if not arg.startswith("logger=")]  # the default loggers
        cfg = compose("config", overrides=[*fast, f"paths.results={results}", "study=e2e"])
    record = train(cfg)
    return cfg, record, results


def test_default_run_trains_source_then_target(finetune):
    cfg, record, results = finetune
    records = _records(results, "e2e")
    stages = sorted(r["stage"] for r in records)
    assert stages == ["source", "target"]
    source = next(r for r in records if r["stage"] == "source")
    assert record["status"] == source["status"] == "completed"
    assert record["init"] == "source" and record["source_run_id"] == source["run_id"]
    assert record["source"]["name"] == "shapes" and record["target"]["name"] == "digits"
    # the 50 labelled target examples: 40 train, 10 (one per class) choose the epoch
    assert (record["train_examples"], record["val_examples"]) == (40, 10)
    # shapes and digits have different label spaces: the head is replaced.
    assert record["head_reset"] is True
    for split in ("val", "test"):
        assert set(record["metrics"][split]) >= {"acc", "f1", "precision", "recall", "ece", "nll"}
        assert 0.0 <= record["metrics"][split]["acc"] <= 1.0
    assert [row["epoch"] for row in record["val_curve"]] == [0, 1]
    best = record["best_epoch"]
    assert record["metrics"]["val"]["acc"] == max(row["acc"] for row in record["val_curve"])
    assert record["val_curve"][best]["acc"] == record["metrics"]["val"]["acc"]
    assert record["num_depth_groups"] == 6 and record["freeze_depth"] == 0


def test_source_checkpoint_is_shared_and_loadable(finetune):
    _, record, results = finetune
    checkpoint = results / record["source_checkpoint"]
    assert checkpoint.parent.parent.name == "sources"  # results/cache/sources/<id>/model.pt
    saved = load_checkpoint(checkpoint)
    assert tuple(saved["classes"]) == tuple(f"{c}" for c in saved["classes"])
    assert len(saved["classes"]) != record["num_classes"]  # shapes classes, not digits


def test_records_follow_documented_schema(finetune):
    _, _, results = finetune
    doc = (REPO / "docs" / "records.md").read_text()
    documented = set()
    for cells in re.findall(r"^\| `([^|]+)` \|", doc, flags=re.M):
        documented.update(name.strip(" `") for name in cells.split(","))
    for record in _records(results, "e2e"):
        missing = documented - set(record)
        assert not missing, f"record lacks documented fields {missing}"
        assert record["schema"] == RECORD_SCHEMA
        assert record["versions"]["torch"] == torch.__version__.split("+")[0] or record["versions"][
            "torch"
        ].startswith(torch.__version__.split("+")[0])
        assert record["config"]["study"] == "e2e"


def test_wandb_runs_are_written_offline_with_group_and_job_type(finetune):
    _, record, results = finetune
    store = ResultsStore(results, "e2e")
    target = summarize(_wandb_file(store.run_dir(record["run_id"])))
    source = summarize(_wandb_file(store.run_dir(record["source_run_id"])))
    assert target["id"] == record["run_id"] and source["id"] == record["source_run_id"]
    assert target["group"] == source["group"] == "e2e"
    assert (target["job_type"], source["job_type"]) == ("target", "source")
    assert "source:shapes" in target["tags"] and "freeze_depth:0" in target["tags"]
    assert {"val/acc", "val/f1", "train/loss", "test/acc"} <= target["history_keys"]
    assert {"model", "train", "seed"} <= target["config_keys"]
    # the csv logger saw the same metrics
    metrics_csv = store.run_dir(record["run_id"]) / "csv" / "metrics.csv"
    assert "val/acc" in metrics_csv.read_text().splitlines()[0]


def test_scratch_baseline_with_one_override(compose):
    record = train(compose("init=scratch", "freeze_depth=3"))
    assert record["status"] == "completed"
    assert record["init"] == "scratch" and record["source"] is None
    # freeze depth cannot matter for a scratch run: normalised away, so grid points collapse
    assert record["freeze_depth"] == 0
    again = train(compose("init=scratch", "freeze_depth=1"))
    assert again["run_id"] == record["run_id"] and again.get("skipped") is True


def test_same_config_and_seed_give_the_same_metrics(compose):
    first = train(compose("init=scratch", "seed=0"))
    second = train(compose("init=scratch", "seed=0", "force=true"))
    other = train(compose("init=scratch", "seed=1"))
    assert first["run_id"] == second["run_id"] != other["run_id"]
    assert second.get("skipped") is None
    assert first["val_curve"] == second["val_curve"]
    assert first["metrics"] == second["metrics"]
    assert first["val_curve"] != other["val_curve"]


def test_same_label_space_keeps_the_source_head(compose):
    record = train(compose("data@source=digits_rot45"))
    assert record["status"] == "completed" and record["head_reset"] is False


def test_nan_loss_is_recorded_as_diverged(compose):
    record = train(compose("init=scratch", "optimizer=sgd", "scheduler=none", "train.lr=1e30"))
    assert record["status"] == "diverged"
    assert "non-finite" in record["error"]
    assert record["metrics"]["test"] == {}
    store = ResultsStore(record["config"]["paths"]["results"], "default")
    assert not store.is_completed(record["run_id"])


def test_loggers_compose_from_config_without_code_changes(compose):
    record = train(compose("init=scratch", "logger=[tensorboard]", "seed=7"))
    assert record["status"] == "completed"
    run_dir = Path(record["config"]["run"]["dir"])
    assert list(run_dir.glob("tensorboard/events.out.tfevents.*"))
    assert not (run_dir / "wandb").exists() and not (run_dir / "csv").exists()


def test_target_validates_on_its_own_budget_or_on_the_pool(compose):
    from transferlab.data import build_splits

    budget = train(compose("init=scratch", "target_size=50", "val_share=0.2"))
    assert budget["val_protocol"] == "budget"
    # 50 examples of 10 classes, one per class held out: 40 train, 10 validate
    assert (budget["train_examples"], budget["val_examples"]) == (40, 10)
    pool = train(compose("init=scratch", "target_size=50", "val_protocol=pool"))
    fixed = build_splits({"name": "digits"}, image_size=16, channels=3).val
    assert pool["val_protocol"] == "pool" and pool["train_examples"] == 50
    assert pool["val_examples"] == len(fixed)  # oracle: the dataset's whole validation set
    assert pool["run_id"] != budget["run_id"]


def test_budget_too_small_to_hold_validation_out_is_refused_before_training(compose):
    from transferlab.errors import ConfigError

    with pytest.raises(ConfigError, match="target size >= 20 for 10 classes"):
        train(compose("init=scratch", "target_size=15"))
