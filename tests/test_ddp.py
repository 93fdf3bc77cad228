"""The multi-process path: Lightning's `ddp` strategy on two CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import FAST


def test_ddp_on_two_cpu_processes_writes_one_record_per_stage(tmp_path):
    """A denoising source and a supervised target, each trained by two processes."""
    results = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "transferlab.cli.run",
        *FAST,
        f"paths.results={results}",
        "study=ddp",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "pretrain/objective=denoising",  # the source stage without labels, the target with them
    ]
    # ddp re-executes this command in a child process; a deadlock would hit the timeout.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (results / "ddp" / "records").glob("*.json")]
    assert sorted(r["stage"] for r in records) == ["source", "target"]
    assert all(r["status"] == "completed" for r in records)
    assert all(r["config"]["trainer"]["strategy"] == "ddp" for r in records)
    (source,) = [r for r in records if r["stage"] == "source"]
    losses = [row["loss"] for row in source["val_curve"]]  # summed over both processes
    assert source["best_epoch"] == losses.index(min(losses))
    # both processes trained: the child wrote its own log next to the parent's
    assert list((results / "ddp" / "hydra").glob("*/train_ddp_process_1.log"))
