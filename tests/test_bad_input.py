"""Bad input: one line naming the bad value and the choices, non-zero exit, nothing completed.

Each case runs the real console entry point in a process of its own: the cases through
`helpers.entry` (forked from a server that imported the package once, so that fifty cases do
not import torch fifty times), the results-folder cases as a user types them (`python -m`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST
from helpers.entry import (
    HEAVY_PACKAGES,
    IMPORT_REPORT_FLAGS,
    IMPORT_REPORT_LINE,
    imported_packages,
    run_entry,
)

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
    # identified by content: a missing folder or file still fails where it is read, in one line
    "image folder missing": (
        ["data@target=image_folder", "target.root=/nowhere", "init=scratch"],
        ["image_folder", "/nowhere"],
    ),
    "weights file missing": (
        ["init=file", "init_path=/nowhere.safetensors"],
        ["weights file", "/nowhere.safetensors", "does not exist"],
    ),
    # one source of truth per setting: the budget, the logger and callbacks groups
    "optimizer lr beside the budget": (["optimizer.lr=0.5"], ["optimizer.lr=0.5", "train.lr"]),
    "trainer epochs beside the budget": (
        ["trainer.max_epochs=20"],
        ["trainer.max_epochs=20", "train.epochs"],
    ),
    "budget set directly": (["budget=null"], ["budget", "train.*"]),
    "trainer callbacks beside the group": (["+trainer.callbacks=[]"], ["trainer.callbacks"]),
    "selection checkpoint removed": (
        ["~callbacks.selection"],
        ["callbacks.selection"],
    ),
    "negative resume interval": (
        ["callbacks.resume_checkpoint.min_interval_s=-1"],
        ["min_interval_s=-1", ">= 0"],
    ),
    "unknown selection mode": (["callbacks.selection.mode=best"], ["'best'", "max", "min"]),
    # a closed, typed config: typos, keys nothing reads, wrong types, values out of range
    "typo in a key": (["freeze_dept=2"], ["freeze_dept", "did you mean freeze_depth?"]),
    "typo in an added key": (["+freeze_dept=2"], ["freeze_dept", "did you mean freeze_depth?"]),
    "typo in a trainer argument": (
        ["+trainer.gradient_clip_vall=1"],
        ["trainer.gradient_clip_vall", "trainer.gradient_clip_val"],
    ),
    "fractional seed": (["seed=1.5"], ["seed", "integer", "1.5"]),
    "negative seed": (["seed=-1"], ["seed", ">= 0", "-1"]),
    "non-numeric learning rate": (["train.lr=abc"], ["train.lr", "number", "'abc'"]),
    "negative thread count": (["threads=-1"], ["threads", ">= 1", "-1"]),
    "image smaller than the model's stem": (["image_size=3"], ["image_size=3", "test_resnet"]),
    # overrides Hydra itself cannot apply, as one line with the nearest key
    "a field of the budget reference": (["budget.lr=0.1"], ["budget.lr", "train.*"]),
    "a + on a setting that exists": (["+seed=3"], ["+seed", "seed=..."]),
    "typo in a preset argument": (
        ["trainer.max_epoch=3"],
        ["trainer.max_epoch", "did you mean trainer.max_epochs?"],
    ),
    "trainer argument the preset leaves out": (
        ["trainer.gradient_clip_val=1"],
        ["trainer.gradient_clip_val", "+trainer.gradient_clip_val="],
    ),
    "Lightning checkpointing set by hand": (
        ["+trainer.enable_checkpointing=true"],
        ["trainer.enable_checkpointing", "set by the code"],
    ),
    "unknown memory layout": (["channels_last=maybe"], ["channels_last", "'maybe'", "auto"]),
    "unknown fine-tuning method": (["method=freeze"], ["method", "freeze", "lp_ft", "lora"]),
    "surgical stage the model lacks": (
        ["method=surgical", "method.tune_stages=[1,9]"],
        ["method.tune_stages=[1, 9]", "6 depth groups", "0..5"],
    ),
    "LoRA target the model lacks": (
        ["method=lora", "method.target_modules=[attn.qkv]"],
        ["method.target_modules", "attn.qkv", "candidates"],
    ),
    "negative L2-SP weight": (["method=l2sp", "method.alpha=-0.1"], ["method.alpha=-0.1", ">= 0"]),
    "LP-FT probe taking every epoch": (
        ["method=lp_ft", "method.probe_share=0.99"],
        ["method.probe_share=0.99", "2 of 2 epochs"],
    ),
    "LP-FT with one epoch": (
        ["method=lp_ft", "train.epochs=1"],
        ["method=lp_ft needs at least 2 epochs", "train.epochs=1"],
    ),
    "LP-FT probe learning rate of zero": (
        ["method=lp_ft", "method.probe_lr=0"],
        ["method.probe_lr=0", "> 0"],
    ),
    "LP-FT probe optimiser that is no preset": (
        ["method=lp_ft", "method.probe_optimizer=lbfgs"],
        ["method.probe_optimizer='lbfgs'", "adamw, sgd"],
    ),
    "LP-FT probe schedule that is no preset": (
        ["method=lp_ft", "method.probe_scheduler=step"],
        ["method.probe_scheduler='step'", "cosine, none"],
    ),
    "typo in an LP-FT setting": (
        ["method=lp_ft", "+method.probe_lrr=0.1"],
        ["method.probe_lrr", "did you mean method.probe_lr?"],
    ),
    "model argument the preset lacks": (
        ["model.kwargs.drop_rate=0.1"],
        ["+model.kwargs.drop_rate"],
    ),
    "a preset group set to null": (["callbacks=null"], ["callbacks=null", "~callbacks"]),
    "validation skipped on some epochs": (
        ["+trainer.check_val_every_n_epoch=5"],
        ["validation must run once at the end of every epoch"],
    ),
    # domain adaptation: what it needs is checked before any training
    "adaptation between label spaces": (
        ["method=dann", "data@source=shapes", "target_size=0"],
        ["method=dann", "shapes", "digits", "label space"],
    ),
    "validation in the middle of an epoch": (
        ["+trainer.val_check_interval=0.5"],
        ["validation must run once at the end of every epoch", "val_check_interval=1.0"],
    ),
}


def _run(args: list[str], tmp_path: Path, forked: bool = True) -> subprocess.CompletedProcess:
    environ = {**os.environ, "TRANSFERLAB_DATA": str(tmp_path / "data")}
    args = [*FAST, f"paths.results={tmp_path / 'results'}", *args]
    if forked:
        return run_entry(args, environ, cwd=tmp_path)
    cmd = [sys.executable, "-m", "transferlab.cli.run", *args]
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


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0]


def test_results_path_that_is_a_file_is_one_line(tmp_path):
    afile = tmp_path / "results.txt"
    afile.write_text("not a folder")
    proc = _run([f"paths.results={afile}", "init=scratch"], tmp_path, forked=False)
    assert proc.returncode == 2
    assert f"paths.results={afile} is a file" in _one_error_line(proc)
    assert afile.read_text() == "not a folder"


def test_a_bad_command_line_is_refused_before_torch_loads(tmp_path):
    # Presets, keys and overrides are checked on the command line, before Hydra runs the app
    # (a value out of range is found where the run starts). Python's import-time report names
    # every module the command imported, on stderr.
    environ = {**os.environ, "TRANSFERLAB_DATA": str(tmp_path / "data")}
    for case in ("unknown model preset", "typo in a key", "a + on a setting that exists"):
        args, expected = CASES[case]
        cmd = [sys.executable, *IMPORT_REPORT_FLAGS, "-m", "transferlab.cli.run", *FAST, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=300)
        assert proc.returncode == 2, proc.stderr[-3000:]
        lines = proc.stderr.splitlines()
        message = [line for line in lines if not line.startswith(IMPORT_REPORT_LINE)]
        assert len(message) == 1 and all(f in message[0] for f in expected), message
        loaded = imported_packages(proc.stderr)
        assert "omegaconf" in loaded and not loaded & HEAVY_PACKAGES


def test_results_path_that_cannot_be_written_is_one_line(tmp_path):
    # /proc refuses new folders even to root (a chmod'ed folder would not stop root).
    where = "/proc/self/transferlab-results"
    proc = _run([f"paths.results={where}", "init=scratch"], tmp_path)
    assert proc.returncode == 2
    assert f"paths.results={where} is not a folder this process can write" in _one_error_line(proc)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_folder_is_one_line(tmp_path):
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        proc = _run([f"paths.results={folder}", "init=scratch"], tmp_path)
    finally:
        folder.chmod(0o755)
    assert proc.returncode == 2
    assert "can write" in _one_error_line(proc)
