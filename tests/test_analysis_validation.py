"""The analysis validates every record it loads: a damaged record (no seed, a NaN or missing
accuracy, a wrong type) is rejected with its reason, listed in the report and problems.csv,
and enters no number; a folder without usable records is a one-line error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from helpers.simulate import SimulatedStudy, simulate_records, write_records

from transferlab.analysis.pipeline import analyze
from transferlab.cli.analyze import main

SPEC = SimulatedStudy(
    study="v", sources={"near": 0.1}, target_sizes=(20,), freeze_depths=(0,), seeds=6
)


def _target(records: list[dict], source: str, seed: int) -> dict:
    targets = [r for r in records if r["stage"] == "target" and r["seed"] == seed]
    return next(r for r in targets if (r["source"] or {}).get("name") == source)


def _damage(record: dict, how: str) -> None:
    if how == "nan test accuracy":
        record["metrics"]["test"]["acc"] = math.nan
    elif how == "missing test accuracy":
        del record["metrics"]["test"]["acc"]
    elif how == "no seed":
        del record["seed"]
    elif how == "seed as text":
        record["seed"] = "3"
    elif how == "accuracy above one":
        record["metrics"]["val"]["acc"] = 1.7


REASONS = {
    "nan test accuracy": "metrics.test.acc is nan",
    "missing test accuracy": "metrics.test.acc is None",
    "no seed": "lacks seed",
    "seed as text": "seed is '3'",
    "accuracy above one": "metrics.val.acc is 1.7",
}


@pytest.mark.parametrize("how", sorted(REASONS))
def test_damaged_record_is_rejected_listed_and_counted_nowhere(how, tmp_path):
    records = simulate_records(SPEC)
    source = next(r["source"]["name"] for r in records if r["stage"] == "target" and r["source"])
    victim = _target(records, source, seed=3)
    _damage(victim, how)
    study = write_records(records, tmp_path)
    path = study / "records" / f"{victim['run_id']}.json"
    # a NaN is written as the JSON literal NaN, which json.loads accepts
    path.write_text(json.dumps(victim))
    results = analyze(study, tmp_path / "out", shift=False, figures=False)
    problems = pd.read_csv(tmp_path / "out" / "problems.csv")
    rejected = problems[problems["status"].eq("rejected")]
    assert rejected["run_id"].tolist() == [victim["run_id"]]
    assert REASONS[how] in rejected["error"].iloc[0]
    # the cell lost that seed, visibly: five pairs, not six, and the report says why
    (cell,) = results["cells"].itertuples(index=False)
    assert cell.n_pairs == 5
    report = (tmp_path / "out" / "report.md").read_text()
    assert "1 record files were rejected" in report and REASONS[how] in report
    assert victim["run_id"] not in set(results["pairs"]["ft_run_id"])


def test_empty_records_folder_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "empty" / "records").mkdir(parents=True)
    assert main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds no record files" in err


def test_folder_whose_every_record_is_rejected_is_one_line_and_exit_2(tmp_path, capsys):
    records = simulate_records(SPEC)
    study = write_records(records, tmp_path)
    for path in (study / "records").glob("*.json"):
        path.write_text("{}")
    assert main([str(study)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "can be analysed" in err and "schema None" in err


def test_simulated_and_written_records_all_pass_validation(tmp_path):
    from transferlab.store.schema import record_problem

    records = simulate_records(SPEC)
    assert [record_problem(r) for r in records] == [None] * len(records)
    study = write_records(records, tmp_path)
    on_disk = [json.loads(p.read_text()) for p in (study / "records").glob("*.json")]
    assert [record_problem(r) for r in on_disk] == [None] * len(on_disk)


def test_a_whole_study_has_no_rejected_records(tmp_path: Path):
    records = simulate_records(SPEC)
    study = write_records(records, tmp_path)
    results = analyze(study, tmp_path / "out", shift=False, figures=False)
    assert results["problems"]["status"].ne("rejected").all()
