"""Validity of the cell comparison: planted effects recovered, null studies not over-flagged,
hyper-parameters chosen on validation, and every run that cannot count reported as such."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.simulate import SimulatedStudy, simulate_records, write_records
from scipy import stats

from transferlab.analysis import analyze_frame, load_records
from transferlab.analysis.cells import build_cells
from transferlab.analysis.records import RecordsPathError, flatten_record, records_frame
from transferlab.analysis.selection import DEFAULT_RULE

ALPHA = 0.05


def frame(records: list[dict]) -> pd.DataFrame:
    return records_frame(flatten_record(r) for r in records)


def test_planted_positive_and_negative_cells_are_recovered(tmp_path: Path):
    planted = {"helps": 0.08, "hurts": -0.08, "neutral": 0.0}
    spec = SimulatedStudy(
        study="planted",
        sources=planted,
        target_sizes=(20, 100, None),
        freeze_depths=(0, 2),
        seeds=8,
        rng_seed=3,
    )
    study = write_records(simulate_records(spec), tmp_path)
    cells = build_cells(load_records(study)).cells
    assert len(cells) == 3 * 3 * 2
    by_source = {s: g for s, g in cells.groupby("source")}
    assert (by_source["helps"]["flag"] == "positive").all()
    assert (by_source["hurts"]["flag"] == "negative").all()
    assert not by_source["neutral"]["flag"].isin(["positive", "negative"]).any()
    assert by_source["hurts"]["ntg"].gt(0).all()  # Wang et al.: NTG > 0 is negative transfer
    for source, gain in planted.items():
        assert by_source[source]["gain"].mean() == pytest.approx(gain, abs=0.02)
        inside = (by_source[source]["ci_low"] <= gain) & (gain <= by_source[source]["ci_high"])
        assert inside.mean() >= 0.5
    assert cells["target_size"].isna().sum() == 6  # the whole pool is its own target size


def test_null_studies_flag_at_most_the_nominal_share():
    """200 studies of 12 independent null cells (each cell its own target, so cells are
    independent): the share of p < alpha stays within the binomial bound of alpha, and the
    share of studies with any flag after Holm (family-wise control) too."""
    n_studies, n_cells = 200, 12
    records = []
    for i in range(n_studies):
        spec = SimulatedStudy(
            study=f"null{i}",
            sources={"null": 0.0},
            targets=tuple(f"t{k}" for k in range(n_cells)),
            target_sizes=(50,),
            freeze_depths=(0,),
            lrs=(1e-3,),
            seeds=5 if i % 2 else 8,
            rng_seed=1000 + i,
        )
        records += simulate_records(spec)
    df = frame(records)
    for correction in ("bh", "holm"):
        cells = build_cells(df, correction=correction, alpha=ALPHA).cells
        assert len(cells) == n_studies * n_cells
        n = len(cells)
        bound = stats.binom.ppf(1 - 1e-3, n, ALPHA) / n
        assert (cells["p"] < ALPHA).mean() <= bound
        flagged = cells["flag"].isin(["positive", "negative"])
        assert flagged.mean() <= bound
        any_flag = flagged.groupby(cells["study"]).any()
        assert any_flag.mean() <= stats.binom.ppf(1 - 1e-3, n_studies, ALPHA) / n_studies
    # the test itself is calibrated: t-tests (5 seeds) near alpha, not far below
    t_cells = cells[cells["test"].eq("t")]
    assert (t_cells["p"] < ALPHA).mean() >= stats.binom.ppf(1e-3, len(t_cells), ALPHA) / len(
        t_cells
    )


def test_learning_rate_is_chosen_on_validation_not_test():
    spec = SimulatedStudy(
        sources={"src": 0.05},
        target_sizes=(100,),
        freeze_depths=(0,),
        lrs=(1e-3, 1e-2),
        seeds=6,
        lr_penalty=0.1,
    )
    records = simulate_records(spec)
    for r in records:  # the lr that validation rejects would win on test
        if r["stage"] == "target" and r["status"] == "completed":
            best = 1e-2 if r["init"] == "scratch" else 1e-3
            if r["lr"] != best:
                r["metrics"]["test"]["acc"] = 0.99
    cells = build_cells(frame(records)).cells
    row = cells.iloc[0]
    assert row["ft_lr"] == 1e-3 and row["scratch_lr"] == 1e-2
    assert row["ft_acc"] < 0.99 and row["gain"] == pytest.approx(0.05, abs=0.03)
    selection = build_cells(frame(records)).selection
    assert selection["chosen"].sum() == 2


def test_too_few_seeds_is_said_not_called_inconclusive():
    spec = SimulatedStudy(
        sources={"src": 0.2}, target_sizes=(100,), freeze_depths=(0,), lrs=(1e-3,), seeds=5
    )
    df = frame(simulate_records(spec))
    strict = build_cells(df, test="wilcoxon").cells.iloc[0]
    assert strict["flag"] == "too-few-seeds"
    assert "0.0625" in strict["reason"]
    # the default t-test has no such floor: five seeds find a large effect
    default = build_cells(df).cells.iloc[0]
    assert default["test"] == "t" and default["flag"] == "positive"
    one = build_cells(
        frame(
            simulate_records(
                SimulatedStudy(
                    sources={"src": 0.2},
                    target_sizes=(100,),
                    freeze_depths=(0,),
                    lrs=(1e-3,),
                    seeds=1,
                )
            )
        )
    ).cells.iloc[0]
    assert one["flag"] == "single-seed" and np.isnan(one["p"])


@pytest.mark.parametrize("tied_seeds", [6, 9, 10])
def test_a_rank_test_on_tied_arms_says_so_and_asks_for_no_seeds(tied_seeds):
    spec = SimulatedStudy(
        sources={"src": 0.05}, target_sizes=(20,), freeze_depths=(0,), seeds=10, lrs=(1e-3,)
    )
    records = simulate_records(spec)
    scratch = {r["seed"]: r for r in records if r["stage"] == "target" and r["init"] == "scratch"}
    for r in records:
        if r["stage"] == "target" and r["init"] == "source":
            acc = scratch[r["seed"]]["metrics"]["test"]["acc"]
            r["metrics"]["test"]["acc"] = acc + (0.0 if r["seed"] < tied_seeds else 0.05)
    (cell,) = build_cells(frame(records), test="wilcoxon").cells.itertuples(index=False)
    assert cell.flag == "inconclusive" and "needs" not in cell.reason
    if tied_seeds == 10:
        assert cell.reason == "every paired difference is zero: the arms tie on every seed"
    elif tied_seeds == 9:  # one signed pair: not "every difference is zero"
        assert cell.reason.startswith("10 pairs, one with a non-zero difference")
    else:  # four signed pairs: 2 / 2**4
        assert cell.min_p == pytest.approx(0.125) and "zero difference" in cell.reason


def test_holm_with_six_seeds_says_more_seeds_are_needed():
    # 8 cells, a rank test on 6 seeds (smallest p 1/32): alone, a cell's q is at least 8/32;
    # 8 * 2 / 2**n < 0.05 first holds at n = 9
    spec = SimulatedStudy(sources={"a": 0.0, "b": 0.0}, target_sizes=(20, 100), seeds=6)
    cells = build_cells(frame(simulate_records(spec)), correction="holm", test="wilcoxon").cells
    assert len(cells) == 8 and cells["reason"].str.contains("needs 9 seeds").all()


def test_missing_baseline_failed_and_diverged_runs_are_reported():
    spec = SimulatedStudy(
        sources={"src": 0.1, "broken": 0.1},
        target_sizes=(20, 100),
        freeze_depths=(0,),
        lrs=(1e-3,),
        seeds=6,
    )
    records = [
        r for r in simulate_records(spec) if not (r["init"] == "scratch" and r["target_size"] == 20)
    ]
    for r in records:
        if r["init"] == "source" and r["source"]["description"] == "broken":
            r["status"], r["metrics"], r["error"] = "failed", {}, "CUDA out of memory"
        if r["init"] == "source" and r["source"]["description"] == "src" and r["seed"] == 0:
            r["status"], r["error"] = "diverged", "loss is NaN"
    results = analyze_frame(frame(records), n_resamples=100)
    cells = results["cells"].set_index(["source", "target_size"])
    assert cells.loc[("src", 20), "flag"] == "missing-baseline"
    assert cells.loc[("broken", 100), "flag"] == "no-completed-runs"
    assert cells.loc[("broken", 100), "ft_failed"] == 6
    src = cells.loc[("src", 100)]
    assert src["ft_diverged"] == 1 and src["n_pairs"] == 5  # the diverged seed is no number
    problems = results["problems"]
    assert set(problems["status"]) == {"failed", "diverged"}
    assert len(problems) == 6 * 2 + 2


def test_results_root_with_torn_files(tmp_path: Path):
    a = simulate_records(SimulatedStudy(study="a", target_sizes=(20,), seeds=2))
    b = simulate_records(SimulatedStudy(study="b", target_sizes=(20,), seeds=2))
    write_records(a + b, tmp_path)
    torn = tmp_path / "a" / "records" / "torn.json"
    torn.write_text(json.dumps(a[0])[:50])
    (tmp_path / "b" / "records" / "list.json").write_text("[1, 2]")
    df = load_records(tmp_path)
    assert len(df) == len(a) + len(b)
    assert {Path(p).name for p, _ in df.attrs["unreadable"]} == {"torn.json", "list.json"}
    assert set(build_cells(df).cells["study"]) == {"a", "b"}
    only_a = load_records(tmp_path / "a")
    assert set(only_a["study"]) == {"a"} and len(only_a.attrs["unreadable"]) == 1
    assert set(load_records(tmp_path / "a" / "records")["study"]) == {"a"}


def _one_cell_study() -> list[dict]:
    spec = SimulatedStudy(
        sources={"src": 0.1}, target_sizes=(100,), freeze_depths=(0,), lrs=(1e-3,), seeds=6
    )
    return simulate_records(spec)


def test_conflicting_records_are_listed_and_enter_no_number():
    """Same cell, settings and seed under two run ids: a conflict, never resolved silently."""
    records = _one_cell_study()
    copy = json.loads(json.dumps(records[-1]))
    copy["run_id"] = "f" * 16
    copy["finished_at"] = "2025-01-02T00:00:00+00:00"
    res = build_cells(frame([*records, copy]))
    assert res.cells.iloc[0]["n_pairs"] == 5  # the conflicting seed enters no number
    assert list(res.problems["status"]) == ["conflict", "conflict"]
    assert set(res.problems["run_id"]) == {records[-1]["run_id"], "f" * 16}


def test_the_same_run_recorded_twice_counts_once():
    records = _one_cell_study()
    copy = json.loads(json.dumps(records[-1]))
    copy["finished_at"] = "2025-01-02T00:00:00+00:00"
    res = build_cells(frame([*records, copy]))
    assert res.cells.iloc[0]["n_pairs"] == 6
    assert list(res.problems["status"]) == ["duplicate"]
    assert res.problems.iloc[0]["run_id"] == records[-1]["run_id"]  # the later one counts


def test_a_swept_shared_setting_gets_its_own_cells_and_baselines():
    """Sweeping the optimizer used to make records collide (the later one silently won)."""
    halves = []
    for name, gain, rng in (("torch.optim.AdamW", -0.2, 0), ("torch.optim.SGD", 0.2, 1)):
        spec = SimulatedStudy(
            sources={"src": gain},
            target_sizes=(100,),
            freeze_depths=(0,),
            lrs=(1e-3,),
            seeds=6,
            rng_seed=rng,
            settings={"optimizer._target_": name},
        )
        halves += simulate_records(spec)
    res = build_cells(frame(halves))
    assert res.problems.empty
    cells = res.cells.set_index("variant")
    assert set(cells.index) == {
        "optimizer._target_=torch.optim.AdamW",
        "optimizer._target_=torch.optim.SGD",
    }
    assert (cells["n_pairs"] == 6).all()
    assert cells.loc["optimizer._target_=torch.optim.SGD", "flag"] == "positive"
    assert cells.loc["optimizer._target_=torch.optim.AdamW", "flag"] == "negative"
    # each fine-tuned arm is paired with the scratch runs of its own optimizer
    for variant, group in res.pairs.groupby("variant"):
        scratch_ids = set(group["scratch_run_id"])
        own = {
            r["run_id"]
            for r in halves
            if r["init"] == "scratch" and variant.endswith(r["identity"]["optimizer._target_"])
        }
        assert scratch_ids <= own and len(scratch_ids) == 6


@pytest.mark.parametrize("setting", ["pretrain.lr", "pretrain.seed"])
def test_a_swept_source_setting_splits_finetuned_arms_that_share_one_baseline(setting):
    """A swept pre-training setting, its seed included (once the two pre-training seeds were
    "conflicts", dropped both), gives each source checkpoint its own cell on one baseline."""
    records = []
    for value, rng in ((0.001, 0), (0.01, 1)) if setting == "pretrain.lr" else ((0, 0), (1, 1)):
        spec = SimulatedStudy(
            sources={"src": 0.1},
            target_sizes=(100,),
            freeze_depths=(0,),
            lrs=(1e-3,),
            seeds=6,
            rng_seed=rng,
            source_settings={setting: value},
        )
        half = simulate_records(spec)
        # a scratch run has no source stage: both halves hold the same scratch runs
        records += half if not records else [r for r in half if r["init"] != "scratch"]
    res = build_cells(frame(records))
    assert res.problems.empty
    expected = ["pretrain.lr=0.001", "pretrain.lr=0.01"]
    if setting == "pretrain.seed":
        expected = ["pretrain.seed=0", "pretrain.seed=1"]
    assert sorted(res.cells["source_variant"]) == expected
    assert (res.cells["variant"] == "").all() and (res.cells["n_pairs"] == 6).all()
    baselines = res.pairs.groupby("source_variant")["scratch_run_id"].apply(frozenset)
    assert baselines.nunique() == 1 and len(baselines.iloc[0]) == 6
    assert set(res.cells["selection"]) == {DEFAULT_RULE.name}


def test_records_of_an_older_schema_are_listed_not_analysed(tmp_path: Path):
    records = simulate_records(SimulatedStudy(study="a", target_sizes=(20,), seeds=2))
    old = {**records[0], "schema": 1}
    old.pop("identity")
    write_records(records, tmp_path)
    (tmp_path / "a" / "records" / "old.json").write_text(json.dumps(old))
    df = load_records(tmp_path / "a", cache=False)
    assert len(df) == len(records)
    ((path, reason),) = df.attrs["unreadable"]
    assert Path(path).name == "old.json" and "schema 1 record" in reason


def test_a_planted_cache_file_is_ignored_not_executed(tmp_path: Path):
    """The records cache is read as arrays without pickle: a pickle planted there runs no code."""
    import pickle

    from transferlab.analysis.records import _cache_path

    records = simulate_records(SimulatedStudy(study="a", target_sizes=(20,), seeds=2))
    study = write_records(records, tmp_path)
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (marker.write_text, ("pwned",))

    cache = _cache_path(tmp_path.resolve(), study.resolve())
    cache.parent.mkdir(parents=True, exist_ok=True)
    for path in (cache, cache.with_suffix(".pkl")):
        path.write_bytes(pickle.dumps(Payload()))
    df = load_records(study)
    assert not marker.exists() and len(df) == len(records)
    with np.load(cache, allow_pickle=False) as arrays:  # replaced by a real cache
        assert len(str(arrays["rules"])) == 64


def test_cached_table_equals_parsing_every_file(tmp_path: Path):
    from transferlab.analysis.records import (
        COLUMNS,
        _cache_path,
        _cached_frame,
        _rules_key,
        record_files,
    )
    from transferlab.analysis.table_cache import read_table

    records = simulate_records(SimulatedStudy(study="a", target_sizes=(20, 50), seeds=3))
    study = write_records(records, tmp_path)
    fresh = load_records(study, cache=False)
    # equal strings are one object in a parsed table too (pandas groups on them faster)
    for col in ("model", "source", "target", "status"):
        assert len({id(v) for v in fresh[col].dropna()}) == fresh[col].nunique()
    load_records(study)  # writes the cache
    cached = load_records(study)  # reads it
    pd.testing.assert_frame_equal(cached, fresh)
    # A changed, a torn and a new file: only they are parsed again.
    first, second = sorted((study / "records").glob("*.json"))[:2]
    changed = {**json.loads(first.read_text()), "error": "edited"}
    first.write_text(json.dumps(changed))
    second.write_text("{")
    (study / "records" / "new.json").write_text(json.dumps({**changed, "run_id": "new"}))
    again = load_records(study)
    pd.testing.assert_frame_equal(again, load_records(study, cache=False))
    assert "edited" in set(again["error"]) and len(again.attrs["unreadable"]) >= 1
    # Nothing changed since: the table comes from the cache's columns, no row parsed again.
    table = read_table(_cache_path(tmp_path.resolve(), study.resolve()), _rules_key(), COLUMNS)
    columnar = _cached_frame(table, record_files(study)[0])
    pd.testing.assert_frame_equal(columnar, again)
    reread = load_records(study)
    pd.testing.assert_frame_equal(reread, again)
    assert reread.attrs["unreadable"] == again.attrs["unreadable"]
    # A removed file leaves the table (the cache holds one file too many: parsed path).
    (study / "records" / "new.json").unlink()
    assert _cached_frame(table, record_files(study)[0]) is None
    gone = load_records(study)
    assert "new" not in set(gone["run_id"]) and len(gone) == len(again) - 1


def test_choices_at_the_edge_of_the_grid_are_marked():
    # The simulator's scratch arms do best at the largest lr, fine-tuning at the smallest.
    spec = SimulatedStudy(sources={"src": 0.05}, target_sizes=(20,), freeze_depths=(0,), seeds=3)
    res = build_cells(frame(simulate_records(spec)))
    (cell,) = res.cells.itertuples(index=False)
    assert cell.ft_edge == "lr at the bottom of the grid"
    assert cell.scratch_edge == "lr at the top of the grid"
    chosen = res.selection[res.selection["chosen"]]
    assert set(chosen["edge"]) == {"lr at the bottom of the grid", "lr at the top of the grid"}
    assert (res.selection.loc[~res.selection["chosen"], "edge"] == "").all()
    # a grid of three whose middle value validates best: interior, no mark
    interior = SimulatedStudy(
        sources={"src": 0.05},
        target_sizes=(20,),
        freeze_depths=(0,),
        seeds=3,
        lrs=(1e-4, 1e-3, 1e-2),
    )
    records = simulate_records(interior)
    for r in records:
        if r["stage"] == "target" and r["init"] == "source" and r["lr"] == 1e-3:
            r["metrics"]["val"]["acc"] = 0.99
    (cell,) = build_cells(frame(records)).cells.itertuples(index=False)
    assert cell.ft_lr == 1e-3 and cell.ft_edge == ""
    lone = build_cells(
        frame(
            simulate_records(
                SimulatedStudy(
                    sources={"src": 0.05},
                    target_sizes=(20,),
                    freeze_depths=(0,),
                    seeds=3,
                    lrs=(1e-3,),
                )
            )
        )
    )
    assert lone.cells["ft_edge"].eq("").all()  # one value: not a grid, no edge


def test_an_edge_puts_at_risk_only_the_flags_it_could_overturn():
    # fine-tuning's lr sits at the bottom of the grid, scratch's at the top (the simulator's)
    spec = SimulatedStudy(
        sources={"good": 0.3, "bad": -0.3}, target_sizes=(20,), freeze_depths=(0,), seeds=6
    )
    records = simulate_records(spec)
    cells = build_cells(frame(records)).cells.set_index("source")
    assert cells.loc["good", "flag"] == "positive" and cells.loc["bad", "flag"] == "negative"
    assert cells["edge_risk"].all()  # a better baseline / a better fine-tuned lr
    spec = SimulatedStudy(
        sources={"good": 0.3, "bad": -0.3},
        target_sizes=(20,),
        freeze_depths=(0,),
        seeds=6,
        lrs=(1e-4, 1e-3, 1e-2),
    )
    records = simulate_records(spec)
    for r in records:  # the baseline's best lr now inside its grid
        if r["stage"] == "target" and r["init"] == "scratch" and r["lr"] == 1e-3:
            r["metrics"]["val"]["acc"] = 0.99
    cells = build_cells(frame(records)).cells.set_index("source")
    assert cells.loc["good", "scratch_edge"] == "" and cells.loc["good", "ft_edge"] != ""
    # a positive cell whose fine-tuned arm could only gain more is not at risk
    assert cells.loc["good", "flag"] == "positive" and not cells.loc["good", "edge_risk"]
    assert cells.loc["bad", "flag"] == "negative" and cells.loc["bad", "edge_risk"]
    records = simulate_records(spec)
    for r in records:  # the harmful source's best lr inside its grid; the baseline's at the top
        if r["stage"] == "target" and (r["source"] or {}).get("name") == "bad" and r["lr"] == 1e-3:
            r["metrics"]["val"]["acc"] = 0.99
    cells = build_cells(frame(records)).cells.set_index("source")
    assert cells.loc["bad", "ft_edge"] == "" and cells.loc["bad", "scratch_edge"] != ""
    # a negative cell whose baseline could only get better is not at risk either
    assert cells.loc["bad", "flag"] == "negative" and not cells.loc["bad", "edge_risk"]


def test_grid_edges_reach_the_report(tmp_path: Path):
    spec = SimulatedStudy(sources={"src": 0.05}, target_sizes=(20,), freeze_depths=(0,), seeds=3)
    study = write_records(simulate_records(spec), tmp_path)
    from transferlab.analysis import analyze

    analyze(study, tmp_path / "out", shift=False, figures=False)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "### Choices at an edge of the grid" in report
    cells = pd.read_csv(tmp_path / "out" / "cells.csv")
    assert "**lr at the top of the grid** for 1 of 1 scratch arms (at least" in report
    # the simulator's fine-tuned arm gains, and its baseline sits at the top of the grid
    assert cells["flag"].eq("positive").all() and cells["edge_risk"].all()
    assert "**Flags an edge could overturn: 1**" in report
    assert "widen the grid" in report
    assert "edge" in pd.read_csv(tmp_path / "out" / "selection.csv").columns


def test_calibration_changes_are_paired_per_cell():
    spec = SimulatedStudy(sources={"src": 0.05}, target_sizes=(20,), freeze_depths=(0,), seeds=4)
    records = simulate_records(spec)
    for r in records:
        if r["stage"] == "target" and r["status"] == "completed":
            worse = r["init"] == "source"  # fine-tuned runs: ECE up by 0.05, NLL down by seed
            r["metrics"]["test"]["ece"] = 0.10 + (0.05 if worse else 0.0)
            r["metrics"]["test"]["nll"] = 1.0 - (0.01 * r["seed"] if worse else 0.0)
    (cell,) = build_cells(frame(records)).cells.itertuples(index=False)
    assert cell.d_ece == pytest.approx(0.05) and cell.d_ece_low == pytest.approx(0.05)
    assert cell.d_nll == pytest.approx(-0.015)  # mean of 0, -0.01, -0.02, -0.03
    lo, hi = stats.ttest_1samp([0, -0.01, -0.02, -0.03], 0).confidence_interval(0.95)
    assert (cell.d_nll_low, cell.d_nll_high) == pytest.approx((lo, hi))


def test_an_augmentation_is_part_of_the_cell_and_of_its_baseline():
    records = []
    for augment in ({"augment": None}, {"augment._target_": "FlipCrop", "augment.padding": 2}):
        spec = SimulatedStudy(
            sources={"src": 0.05}, target_sizes=(20,), freeze_depths=(0,), seeds=3, settings=augment
        )
        records += simulate_records(spec)
    res = build_cells(frame(records))
    assert len(res.cells) == 2 and res.cells["variant"].str.contains("augment").all()
    baselines = res.pairs.groupby("variant")["scratch_run_id"].agg(set)
    assert baselines.iloc[0].isdisjoint(baselines.iloc[1])  # each cell its own scratch runs


def test_arms_under_different_validation_protocols_are_never_paired(tmp_path: Path):
    records = []
    for protocol in ("budget", "pool"):
        spec = SimulatedStudy(
            sources={"src": 0.05},
            target_sizes=(20,),
            freeze_depths=(0,),
            seeds=3,
            settings={"val_protocol": protocol},
        )
        records += simulate_records(spec)
    res = build_cells(frame(records))
    assert len(res.cells) == 2  # one cell per protocol, each with its own baseline
    assert sorted(res.cells["ft_val_protocol"]) == ["budget", "pool"]
    assert (res.cells["ft_val_protocol"] == res.cells["scratch_val_protocol"]).all()
    assert res.cells["variant"].str.contains("val_protocol").all()
    assert (res.pairs.groupby("variant")["scratch_run_id"].nunique() == 3).all()
    study = write_records(records, tmp_path)
    from transferlab.analysis import analyze

    analyze(study, tmp_path / "out", shift=False, figures=False)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**oracle validation**" in report and "own labelled budget" in report
    # every selected value is printed with its protocol: the cell table and each cell's line
    table = report.split("\n## Cells\n")[1].split("\n## ")[0]
    assert "ft_val_protocol" in table and "| budget |" in table and "| pool |" in table
    from transferlab.analysis.findings import _cell_line

    lines = {row.ft_val_protocol: _cell_line(row, {}) for row in res.cells.itertuples()}
    assert lines["budget"].endswith("(chosen on budget validation)")
    assert lines["pool"].endswith("(chosen on **oracle validation**)")


def test_a_rule_change_makes_the_records_cache_a_miss(tmp_path: Path, monkeypatch):
    """Records accepted and cached under one identity rule are refused under the next, also
    when the cache holds them (it was keyed on its own layout version only)."""
    from transferlab.analysis import flatten
    from transferlab.analysis import records as records_module

    study = write_records(simulate_records(SimulatedStudy(study="a", target_sizes=(20,))), tmp_path)
    assert len(load_records(study)) > 0  # parsed and cached
    # The next rule: the cache's key (records) and the rows' check (flatten) both read it.
    for module in (records_module, flatten):
        monkeypatch.setattr(module, "IDENTITY_VERSION", module.IDENTITY_VERSION + 1)
    for cache in (True, False):
        with pytest.raises(RecordsPathError, match="superseded, not analysed"):
            load_records(study, cache=cache)
