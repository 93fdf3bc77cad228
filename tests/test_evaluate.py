"""Kept weights, their re-evaluation on other data, and what W&B gets besides the metrics.

A small study trains for real (Lightning Trainer, W&B offline, weights on disk); `transferlab-eval`
runs as its command-line entry point; the analysis reads the evaluation records it wrote; the
W&B offline run files are read back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.wandb_files import finished, summarize

from transferlab.analysis.pipeline import AnalysisSettings, analyze
from transferlab.cli.evaluate import main as evaluate_main
from transferlab.store import ResultsStore
from transferlab.training.run import train

#: One worker runs this file: its module fixture is built once.
pytestmark = pytest.mark.xdist_group("test_evaluate")

STUDY = "kept"
ARMS = (["init=scratch"], ["init=source", "freeze_depth=3"])
SEEDS = (0, 1)


def _wandb_file(run_dir: Path) -> Path:
    return finished(next(run_dir.glob("wandb/offline-run-*/run-*.wandb")))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Scratch and transferred runs of two seeds with their weights kept; one more run
    without (save_weights=false)."""
    from conftest import CONF_DIR, FAST
    from hydra import compose, initialize_config_dir

    import transferlab.cli.run  # noqa: F401 - registers the tl.uid resolver

    results = tmp_path_factory.mktemp("kept") / "results"

    def run(*overrides: str) -> dict:
        args = [*FAST, f"paths.results={results}", f"study={STUDY}", "threads=1", *overrides]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return train(compose(config_name="config", overrides=args))

    records = [
        run(
            *arm,
            f"seed={seed}",
            "save_weights=true",
            "logger=[wandb]",
            "+logger.wandb.tags=[pilot]",
            "+logger.wandb.notes=first look",
            "logger.wandb.log_source_checkpoint=true",
        )
        for arm in ARMS
        for seed in SEEDS
    ]
    unkept = run("init=scratch", "seed=2", "logger=[csv]")
    return results, records, unkept, run


def test_a_kept_run_tested_on_its_own_target_gives_its_own_test_metrics(study):
    results, records, unkept, _ = study
    store = ResultsStore(results, STUDY)
    for record in records:
        assert record["status"] == "completed"
        assert (results / record["checkpoint"]).is_file()
    assert unkept["checkpoint"] is None
    assert evaluate_main([str(results / STUDY), "--on", "digits"]) == 0
    evals = [r for r in store.records() if r["stage"] == "eval"]
    assert len(evals) == len(records)  # the run without weights is not evaluated
    by_run = {r["evaluated_run_id"]: r for r in evals}
    for record in records:
        again = by_run[record["run_id"]]["metrics"]
        assert again["test"]["acc"] == pytest.approx(record["metrics"]["test"]["acc"], abs=1e-6)
        assert again["val"] == record["metrics"]["val"]


def test_evaluations_on_a_shift_are_paired_cells_of_the_analysis(study, capsys):
    results, records, *_ = study
    path = str(results / STUDY)
    assert (
        evaluate_main(
            [
                path,
                "--on",
                "digits_rot45",
                "--on",
                "{name: digits, shifts: [{name: noise, std: 0.3}]}",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"{2 * len(records)} evaluations written" in out
    assert "1 completed runs kept no weights" in out
    assert evaluate_main([path, "--on", "digits_rot45"]) == 0  # done: nothing new
    assert f"0 evaluations written, {len(records)} done before" in capsys.readouterr().out
    cells = analyze(path, None, AnalysisSettings(shift=False, figures=False))["cells"]
    tested = cells[cells["target"].eq("digits, tested on digits+rotate(degrees=45)")]
    assert len(tested) == 1 and int(tested["n_pairs"].iloc[0]) == len(SEEDS)
    assert cells["target"].eq("digits, tested on digits+noise(std=0.3)").sum() == 1
    own = cells[cells["target"].eq("digits")]
    assert int(own["n_pairs"].iloc[0]) == len(SEEDS)


def test_another_label_space_is_one_line_and_writes_nothing(study, capsys):
    results, *_ = study
    before = sorted((results / STUDY / "records").iterdir())
    assert evaluate_main([str(results / STUDY), "--on", "shapes"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "label space" in err and "shapes" in err
    assert sorted((results / STUDY / "records").iterdir()) == before


def test_weights_asked_for_later_train_the_run_again_and_keep_them(study):
    results, _, unkept, run = study
    again = run("init=scratch", "seed=2", "logger=[csv]", "save_weights=true")
    assert again["run_id"] == unkept["run_id"] and not again.get("skipped")
    assert (results / again["checkpoint"]).is_file()
    assert again["metrics"] == unkept["metrics"]  # the same run, now with its weights
    assert run("init=scratch", "seed=2", "logger=[csv]", "save_weights=true")["skipped"]


def test_wandb_gets_the_users_tags_and_notes_and_the_weights_as_artifacts(study):
    results, records, *_ = study
    store = ResultsStore(results, STUDY)
    transferred = next(r for r in records if r["init"] == "source")
    target = summarize(_wandb_file(store.run_dir(transferred["run_id"])))
    assert "pilot" in target["tags"] and "init:source" in target["tags"]
    assert target["notes"] == "first look"
    assert (transferred["run_id"], "model") in target["artifacts"]
    source = summarize(_wandb_file(store.run_dir(transferred["source_run_id"])))
    assert (transferred["source_run_id"], "model") in source["artifacts"]
    record = json.loads(store.record_path(transferred["run_id"]).read_text())
    assert "logger" not in json.dumps(record["identity"])  # tags and notes change no number
