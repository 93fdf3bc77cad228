"""Drift chains (`experiment=drift`): sequential fine-tuning from the previous step's selected
weights, the static model and forgetting through `transferlab-eval --drift`, and a chain killed
half-way that resumes without training a finished step again.

Real Hydra composition, real Lightning training, real subprocesses for the kill; weights are
read back from disk and compared tensor by tensor.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from helpers import entry
from helpers.probes import StartWeights

from transferlab.analysis import analyze
from transferlab.cli.evaluate import main as evaluate_main
from transferlab.models import load_checkpoint
from transferlab.training.run import train

#: A three-step chain of growing rotation, 40 labels per step, kept weights.
CHAIN = "[{name: digits}, {name: digits, shifts: [{name: rotate, degrees: 30}]}, " + (
    "{name: digits, shifts: [{name: rotate, degrees: 60}]}]"
)
RUN = [
    "experiment=drift",
    "hydra/launcher=basic",
    f"drift.chain={CHAIN}",
    "image_size=16",
    "target_size=40",
    "source_size=200",
    "train.epochs=2",
    "pretrain.epochs=1",
    "logger=[csv]",
]
TIMEOUT = 600


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("drift/records/*.json"))]


def _steps(results: Path) -> dict[tuple[str, int], dict]:
    """Target records by (init, drift step)."""
    return {
        (r["init"], r["config"]["drift"]["step"]): r
        for r in _records(results)
        if r["stage"] == "target"
    }


def test_a_sequential_step_starts_from_the_previous_steps_selected_weights(compose, tmp_path):
    """Checked by weights: the model each step started fitting from is the previous step's
    kept (selected) model, tensor for tensor, and not the source's."""
    probe = "+callbacks.probe._target_=helpers.probes.StartWeights"
    record = train(compose(*RUN, "init=previous", "drift.step=2", probe, fast=False))
    assert record["status"] == "completed", record["error"]
    results = tmp_path / "results"
    steps = _steps(results)
    assert set(steps) == {("source", 0), ("previous", 1), ("previous", 2)}  # trained in order
    started = StartWeights.seen
    for step in (1, 2):
        before = steps[("source", 0)] if step == 1 else steps[("previous", 1)]
        kept = load_checkpoint(results / before["checkpoint"])["state_dict"]
        start = started[str(results / "drift" / "runs" / steps[("previous", step)]["run_id"])]
        assert kept.keys() == start.keys()
        for key, value in kept.items():
            assert torch.equal(value, start[key]), (step, key)
    source = load_checkpoint(results / steps[("source", 0)]["source_checkpoint"])["state_dict"]
    start = started[str(results / "drift" / "runs" / steps[("previous", 2)]["run_id"])]
    assert any(not torch.equal(v, start[k]) for k, v in source.items() if k in start)


def test_static_and_forgetting_are_evaluations_of_kept_weights(compose, tmp_path):
    """transferlab-eval --drift tests step 0's model on the later steps (static) and each
    sequential step on step 0 (forgetting); the analysis has all four strategies by step."""
    for init in ("source", "scratch", "previous"):
        for step in (0, 1, 2):
            record = train(compose(*RUN, f"init={init}", f"drift.step={step}", fast=False))
            assert record["status"] == "completed", record["error"]
    study = tmp_path / "results" / "drift"
    assert evaluate_main([str(study), "--drift"]) == 0
    evaluations = [r for r in _records(tmp_path / "results") if r["stage"] == "eval"]
    pairs = {
        (r["init"], r["config"]["drift"]["step"], r["evaluated_on"]["description"])
        for r in evaluations
    }
    assert pairs == {
        ("source", 0, "digits+rotate(degrees=30)"),
        ("source", 0, "digits+rotate(degrees=60)"),
        ("previous", 1, "digits"),
        ("previous", 2, "digits"),
    }
    results = analyze(study, shift=False, figures=True, n_resamples=50)
    table = results["drift"]
    assert set(table["strategy"]) == {"static", "source", "sequential", "scratch"}
    assert set(table["step"]) == {0, 1, 2}
    static = table[table["strategy"].eq("static")].set_index("step")["test_acc"]
    step0 = [
        r for r in evaluations if r["evaluated_on"]["description"] == "digits+rotate(degrees=60)"
    ]
    assert static[2] == step0[0]["metrics"]["test"]["acc"]  # the evaluation, not a new run
    assert set(results["forgetting"]["step"]) == {1, 2}
    assert results["cells"]["target"].str.contains("tested on").sum() == 0  # no drift eval cell
    assert (study / "analysis" / "figures").glob("drift-*.png")


def _run(args: list[str], results: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "transferlab.cli.run",
        *RUN,
        f"paths.results={results}",
        "trainer.enable_progress_bar=false",
        *args,
    ]


def test_a_killed_chain_resumes_without_training_a_finished_step_again(tmp_path):
    results = tmp_path / "results"
    cmd = _run(["init=previous", "drift.step=2", "train.epochs=4"], results)
    log = tmp_path / "first.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            cmd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + TIMEOUT
    try:
        while ("previous", 1) not in _steps(results):  # step 1 finished: kill during step 2
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    before = _steps(results)
    assert ("previous", 2) not in before
    weights = {k: (results / r["checkpoint"]).stat().st_mtime_ns for k, r in before.items()}
    again = entry.run(cmd, timeout=TIMEOUT)  # forked (`helpers.entry`); the first as typed
    assert again.returncode == 0, again.stderr[-3000:]
    after = _steps(results)
    assert after[("previous", 2)]["status"] == "completed"
    for key, record in before.items():  # the finished steps: the same records and weights
        assert after[key]["finished_at"] == record["finished_at"], key
        assert (results / record["checkpoint"]).stat().st_mtime_ns == weights[key], key
    started = [r for r in _records(results) if r["stage"] == "source"]
    assert len(started) == 1  # the source trained once, for step 0
    assert pd.notna(after[("previous", 2)]["metrics"]["test"]["acc"])
