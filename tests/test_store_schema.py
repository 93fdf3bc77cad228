"""The record schema is declared once (store.schema) and docs/records.md is generated from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transferlab.store import ResultsStore, RunRecord
from transferlab.store.identity import NOT_IDENTITY, TARGET_ONLY, UNUSED_BY_INIT
from transferlab.store.schema import FIELDS, field_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "records.md"


def test_the_documented_field_table_is_the_generated_one():
    text = DOC.read_text()
    start, end = text.index("<!-- fields:start -->"), text.index("<!-- fields:end -->")
    assert text[start:end].split("\n", 1)[1].strip() == field_table().strip()
    for name in ("head_reset", "identity", "identity_version", "trainable_parameters"):
        assert f"| `{name}` |" in text


def test_the_identity_rule_is_documented_whole():
    text = DOC.read_text()
    for pattern in NOT_IDENTITY:
        assert f"`{pattern}`" in text, pattern
    for init, unused in UNUSED_BY_INIT.items():
        assert f"`init={init}`" in text and all(f"`{k}`" in text for k in unused)
    assert all(f"`{k}`" in text for k in TARGET_ONLY)


def _minimal(**changes) -> dict:
    record = {
        "run_id": "0" * 16,
        "study": "s",
        "stage": "target",
        "status": "completed",
        "error": None,
        "init": "scratch",
        "model": "test_resnet",
        "freeze_depth": 0,
        "source": None,
        "target": {"name": "digits", "description": "digits", "spec": {"name": "digits"}},
        "source_size": None,
        "target_size": 20,
        "lr": 0.001,
        "weight_decay": 0.0,
        "epochs": 1,
        "batch_size": 8,
        "seed": 0,
        "split_seed": 0,
        "source_run_id": None,
        "source_checkpoint": None,
        "versions": {},
        "git_commit": None,
        "identity": {"seed": 0},
        "config": {},
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    return {**record, **changes}


def test_the_store_writes_only_records_that_fit_the_schema(tmp_path):
    store = ResultsStore(tmp_path, "s")
    path = store.write(_minimal())
    written = json.loads(path.read_text())
    assert tuple(sorted(written)) == tuple(sorted(FIELDS))
    with pytest.raises(ValueError, match="unknown status 'done'"):
        store.write(_minimal(status="done"))
    with pytest.raises(TypeError):
        store.write({**_minimal(), "not_a_field": 1})
    with pytest.raises(ValueError, match="unknown stage"):
        RunRecord(**_minimal(stage="pretrain"))


def test_cluster_job_names_the_slurm_job_a_stage_ran_in(monkeypatch):
    from transferlab.store.provenance import SLURM_JOB_FIELDS, cluster_job

    for variable in SLURM_JOB_FIELDS.values():
        monkeypatch.delenv(variable, raising=False)
    assert cluster_job() is None  # outside Slurm
    monkeypatch.setenv("SLURM_JOB_ID", "815")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "812")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_JOB_PARTITION", "gpu")
    job = cluster_job()
    assert job == {
        "job_id": "815", "array_job_id": "812", "array_task_id": "3", "restart_count": 0,
        "partition": "gpu", "node": None,
    }  # fmt: skip
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")  # set by Slurm in a requeued job
    assert cluster_job()["restart_count"] == 2
    assert "cluster_job" in FIELDS  # a field of every record (docs/records.md)
