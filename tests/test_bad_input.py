"""Bad input: one line naming the bad value and the choices, non-zero exit, nothing completed.

Each case runs the real console entry point in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST

CASES = {
    "unknown dataset preset": (["data@source=nope"], ["'nope'", "digits", "shapes"]),
    "unknown dataset name": (["source.name=nope"], ["'nope'", "digits", "shapes"]),
    "unknown shift": (["+target.shifts=[{name: twirl}]"], ["'twirl'", "rotate"]),
    "unknown model preset": (["model=nope"], ["'nope'", "test_resnet"]),
    "unknown timm model": (["model.name=resnet_nope"], ["'resnet_nope'", "timm.list_models"]),
    "unknown logger": (["logger=[csv,nope]"], ["'nope'", "wandb", "tensorboard"]),
    "unknown init": (["init=magic"], ["'magic'", "scratch", "source"]),
    "freeze depth beyond the stages": (["freeze_depth=9"], ["9", "0..5"]),
    "target size larger than the pool": (["target_size=100000"], ["100000"]),
    "non-positive learning rate": (["train.lr=0"], ["train.lr", "0"]),
    "torchvision data missing": (["data@target=mnist"], ["mnist", "download=true"]),
    "hub weights offline": (["init=hub"], ["init=file"]),
    # one source of truth per setting: the budget, the logger and callbacks groups
    "optimizer lr beside the budget": (["optimizer.lr=0.5"], ["optimizer.lr=0.5", "train.lr"]),
    "trainer epochs beside the budget": (
        ["trainer.max_epochs=20"],
        ["trainer.max_epochs=20", "train.epochs"],
    ),
    "budget set directly": (["budget=null"], ["budget", "train.*"]),
    "trainer callbacks beside the group": (["+trainer.callbacks=[]"], ["trainer.callbacks"]),
    "selection checkpoint removed": (
        ["~callbacks.selection_checkpoint"],
        ["callbacks.selection_checkpoint"],
    ),
}


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "TRANSFERLAB_DATA": str(tmp_path / "data"), **env}
    cmd = [
        sys.executable,
        "-m",
        "transferlab.cli.run",
        *FAST,
        f"paths.results={tmp_path / 'results'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=300)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_records_nothing_completed(case, tmp_path):
    args, expected = CASES[case]
    proc = _run(args, tmp_path)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in expected:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    records = list((tmp_path / "results").glob("*/records/*.json"))
    assert not any(json.loads(p.read_text())["status"] == "completed" for p in records)
    # and nothing was trained before the error was found
    assert not list((tmp_path / "results").glob("**/checkpoints/*.ckpt"))
