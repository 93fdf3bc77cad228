"""Claims as data: parsing and its one-line errors, every shipped recipe readable, and verdicts on
simulated studies whose outcome is known (planted gains): PASS, FAIL, INCONCLUSIVE, and nothing
judged at smoke scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.simulate import SimulatedStudy, simulate_records, write_records

from transferlab.analysis import analyze_frame, load_records
from transferlab.errors import ConfigError
from transferlab.reproduce.claims import parse_claims
from transferlab.reproduce.recipes import SCALES, load_recipe, read_recipe, recipe_names
from transferlab.reproduce.verdicts import FAIL, INCONCLUSIVE, PASS, SMOKE, check_claims

GOOD = {
    "id": "helps",
    "claim": "the clean source helps",
    "paper": "Fig. 1",
    "test": "paired",
    "a": {"source": "clean"},
    "b": "scratch",
    "expect": "above",
    "threshold": 0.0,
}


@pytest.mark.parametrize(
    "change, named",
    [
        ({"test": "ttest"}, "'ttest'"),
        ({"expect": "higher"}, "'higher'"),
        ({"threshold": "zero"}, "'zero'"),
        ({"colour": "red"}, "'colour'"),
        ({"a": {"sauce": "clean"}}, "'sauce'"),
        ({"b": None}, "`b`"),
        ({"value": "loss"}, "'loss'"),
        ({"for_each": ["size"]}, "'size'"),
        ({"test": "interval", "table": "cellz"}, "'cellz'"),
    ],
)
def test_a_malformed_claim_is_one_line_naming_the_bad_value(change, named):
    with pytest.raises(ConfigError) as error:
        parse_claims([{**GOOD, **change}])
    message = str(error.value)
    assert "\n" not in message and named in message and "helps" in message


def test_missing_keys_and_repeated_ids_are_refused():
    with pytest.raises(ConfigError, match="lacks paper, threshold"):
        parse_claims([{k: v for k, v in GOOD.items() if k not in ("paper", "threshold")}])
    with pytest.raises(ConfigError, match="'helps' is used twice"):
        parse_claims([GOOD, GOOD])
    with pytest.raises(ConfigError, match="non-empty list"):
        parse_claims([])


def test_every_shipped_recipe_reads_with_its_scales():
    names = recipe_names()
    assert {"yosinski2014", "wang2019", "ganin2016", "drift", "unsupervised_source"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert recipe.paper and recipe.question and recipe.claims
        assert set(recipe.scales) == set(SCALES) and recipe.scales["smoke"]
    with pytest.raises(ConfigError, match="unknown recipe 'yosinski'; valid choices: .*drift"):
        load_recipe("yosinski")


def test_a_bad_claims_file_is_one_line(tmp_path: Path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "claims.yaml").write_text("paper: x\nclaims: [{id: a}\n")
    with pytest.raises(ConfigError, match=r"mine/claims.yaml is not valid YAML \(line \d+\)"):
        read_recipe(folder)
    (folder / "claims.yaml").write_text(
        yaml.safe_dump({"paper": "x", "claims": [GOOD], "scale": 1})
    )
    with pytest.raises(ConfigError, match="unknown key of mine/claims.yaml 'scale'"):
        read_recipe(folder)
    for key, value, named in [
        ("evaluate", "--drift", "evaluate must be a list of transferlab-eval arguments"),
        ("launches", ["seed=1"], "launches must be a list of override lists"),
    ]:
        (folder / "claims.yaml").write_text(
            yaml.safe_dump({"paper": "x", "claims": [GOOD], key: value})
        )
        with pytest.raises(ConfigError, match=named):
            read_recipe(folder)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """A simulated study: a clean source planted at +0.10, a corrupted one at -0.10, a null one
    at 0; 8 seeds, two target sizes."""
    spec = SimulatedStudy(
        study="claims",
        sources={"clean": 0.10, "corrupted": -0.10, "null": 0.0},
        target_sizes=(20, 200),
        freeze_depths=(0,),
        seeds=8,
        rng_seed=3,
    )
    folder = write_records(simulate_records(spec), tmp_path_factory.mktemp("claims"))
    return analyze_frame(load_records(folder), shift=False)


def _claim(**change):
    return parse_claims([{**GOOD, **change}])[0]


def test_planted_gains_give_pass_fail_and_inconclusive(tables):
    claims = [
        _claim(id="clean", for_each=["target_size"]),
        _claim(id="corrupted", a={"source": "corrupted"}, for_each=["target_size"]),
        _claim(id="null", a={"source": "null", "target_size": 20}),
    ]
    clean, corrupted, null = check_claims(claims, tables, smoke=False)
    assert clean.verdict == PASS and [c.level for c in clean.checks] == [
        "target_size=20",
        "target_size=200",
    ]
    assert all(c.low > 0 and c.n == 8 for c in clean.checks)
    assert corrupted.verdict == FAIL and all(c.high < 0 for c in corrupted.checks)
    assert null.verdict == INCONCLUSIVE
    (check,) = null.checks
    assert check.low < 0 < check.high and ("seeds" in check.note)


def test_a_paired_claim_against_scratch_is_the_cells_gain(tables):
    """The same comparison read two ways: the per-seed differences of the claim, and the row of
    the analysis' cells table, give one estimate and one interval."""
    paired = _claim(a={"source": "clean", "target_size": 20})
    interval = _claim(
        test="interval",
        table="cells",
        where={"source": "clean", "target_size": 20},
        a=None,
        b=None,
    )
    (p,), (i,) = (r.checks for r in check_claims([paired, interval], tables, smoke=False))
    assert np.allclose([p.estimate, p.low, p.high], [i.estimate, i.low, i.high])
    assert p.n == i.n == 8


def test_a_gain_can_be_compared_across_target_sizes(tables):
    """value: gain pairs each seed's gain at one size with its gain at another (planted equal
    here, so the difference is within noise), and expect below/above flip the verdict."""
    shrinks = _claim(
        value="gain",
        a={"source": "corrupted", "target_size": 200},
        b={"target_size": 20},
        expect="below",
    )
    (result,) = check_claims([shrinks], tables, smoke=False)
    (check,) = result.checks
    gains = tables["pairs"].assign(g=lambda d: d.ft_test_acc - d.scratch_test_acc)
    corrupted = gains[gains.source.eq("corrupted")].pivot_table("g", "seed", "target_size")
    assert np.isclose(check.estimate, (corrupted[200] - corrupted[20]).mean())


def test_smoke_scale_judges_nothing_and_unknown_cells_cannot_be_computed(tables):
    results = check_claims([_claim(), _claim(id="x", a={"source": "nowhere"})], tables, smoke=True)
    assert {r.verdict for r in results} == {SMOKE}
    (missing,) = check_claims([_claim(a={"source": "nowhere"})], tables, smoke=False)
    assert missing.verdict == INCONCLUSIVE and "matches 0 arms" in missing.checks[0].note


def test_the_preview_composes_each_swept_value_once_as_the_sweep_sees_it():
    """An override replaces the sweep's axis of the same key (seed=0,1 is two values, not the
    recipe's ten), and each value is previewed once, not the grid's product."""
    from types import SimpleNamespace

    from transferlab.reproduce.grid import preview_jobs

    sweeper = SimpleNamespace(params={"seed": "range(10)", "init": "source,scratch"})
    master = SimpleNamespace(hydra=SimpleNamespace(sweeper=sweeper))
    jobs = preview_jobs(["seed=0,1", "train.lr=0.1", "target_size=20,60,200"], master)
    assert jobs[0] == ["seed=0", "init=source", "train.lr=0.1", "target_size=20"]
    assert len(jobs) == 1 + 1 + 1 + 2
    swept = {item for job in jobs for item in job}
    assert swept == {
        "seed=0",
        "seed=1",
        "init=source",
        "init=scratch",
        "train.lr=0.1",
        "target_size=20",
        "target_size=60",
        "target_size=200",
    }


def test_levels_of_a_claim_naming_a_source_variant_come_from_the_records(tmp_path: Path):
    """A paired claim over source variants (one source pre-trained for 1 and for 6 epochs) is
    checked at every target size: the levels are read from the records with the arm labels
    the analysis gives them, not from raw record columns that lack them."""
    spec = SimulatedStudy(
        study="variants",
        sources={"clean": 0.1},
        target_sizes=(20, 200),
        freeze_depths=(0,),
        seeds=6,
        rng_seed=5,
    )
    records = load_records(write_records(simulate_records(spec), tmp_path))
    clean = records["source"].eq("clean") & records["stage"].eq("target")
    weak = records[clean].assign(
        source_variant_key='{"pretrain.epochs":1}',
        run_id=lambda d: d["run_id"] + "w",
        test_acc=lambda d: d["test_acc"] - 0.05,
    )
    records.loc[clean, "source_variant_key"] = '{"pretrain.epochs":6}'
    frame = pd.concat([records, weak], ignore_index=True)
    tables = {**analyze_frame(frame, shift=False), "records": frame}
    better = _claim(
        a={"source": "clean", "source_variant": "pretrain.epochs=6"},
        b={"source_variant": "pretrain.epochs=1"},
        for_each=["target_size"],
    )
    (result,) = check_claims([better], tables, smoke=False)
    assert [c.level for c in result.checks] == ["target_size=20", "target_size=200"]
    assert all(c.n == 6 and np.isclose(c.estimate, 0.05) for c in result.checks)


def test_seeds_needed_is_the_fewest_whose_t_interval_clears_the_threshold():
    """With the spread an interval implies, m seeds clear the gap and m - 1 do not."""
    from scipy import stats

    from transferlab.reproduce.verdicts import seeds_needed

    n, spread, gap = 10, 0.05, 0.02
    half = stats.t.ppf(0.975, n - 1) * spread / np.sqrt(n)
    m = seeds_needed(n, half, gap, 0.95)

    def half_at(k: int) -> float:
        return stats.t.ppf(0.975, k - 1) * spread / np.sqrt(k)

    assert half_at(m) < gap <= half_at(m - 1)
    assert m < n * (half / gap) ** 2  # the t quantile shrinks as seeds are added
    assert seeds_needed(n, 0.001 + gap, gap, 0.95) == n + 1  # a hair short: one more seed


def test_a_claim_naming_a_source_variant_the_grid_lacks_is_refused_before_training():
    """The preview labels its jobs' arms as the analysis does (source_variant included), so a
    typo in a variant is one line before any training, naming the grid's variants."""
    from dataclasses import replace
    from pathlib import Path as P

    from transferlab.cli.reproduce import check_before_training, sweep_overrides

    recipe = load_recipe("kornblith2019")
    first = recipe.claims[0]
    typo = replace(first, a={**first.a, "source_variant": "pretrain.epochs=7"})
    sweeps = sweep_overrides(replace(recipe, claims=[typo]), "smoke", P("unused"), [])
    with pytest.raises(ConfigError, match="source_variant='pretrain.epochs=7'.*pretrain.epochs=6"):
        check_before_training(replace(recipe, claims=[typo]), sweeps)
    check_before_training(recipe, sweeps)  # the shipped claims pass
