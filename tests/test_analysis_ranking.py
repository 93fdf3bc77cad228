"""Candidate initialisations ranked by estimators against their fine-tuned accuracy.

The agreement statistic is checked on tables with a known answer; the whole path (source
stages and a weights file as candidates, scored on each seed's labelled budget, the report's
tables) on a small study trained for real."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CONF_DIR, FAST

from transferlab.analysis.estimators import BASELINES, ESTIMATORS
from transferlab.analysis.pipeline import AnalysisSettings, analyze
from transferlab.analysis.ranking import COMPARED, MIN_CANDIDATES, MIN_SEEDS, rank_agreement
from transferlab.cli.export import main as export_main
from transferlab.training.run import train

#: One worker runs this file: its module fixture is built once.
pytestmark = pytest.mark.xdist_group("test_analysis_ranking")

INTERVAL = {"confidence": 0.95, "n_resamples": 200, "seed": 0}


def _scored(candidates: int, seeds: int, sign: float = 1.0) -> pd.DataFrame:
    """Every score rises with the candidate's accuracy (sign 1) or falls (sign -1)."""
    rng = np.random.default_rng(0)
    rows = []
    for c in range(candidates):
        for s in range(seeds):
            acc = 0.5 + 0.05 * c + 0.005 * rng.normal()
            scores = {k: sign * (c + 0.01 * rng.normal()) for k in (*ESTIMATORS, *BASELINES)}
            rows.append(
                {k: "x" for k in COMPARED}
                | {
                    "source": f"c{c}",
                    "source_variant": "",
                    "seed": s,
                    "test_acc": acc,
                    "status": "ok",
                    **scores,
                }
            )
    return pd.DataFrame(rows).assign(target_size=50, freeze_depth=0)


def test_a_score_that_orders_candidates_as_their_accuracy_has_tau_one():
    ranking = rank_agreement(_scored(6, 5), **INTERVAL)
    assert np.allclose(ranking["tau"], 1.0) and np.allclose(ranking["ci_low"], 1.0)
    estimators = ranking[ranking["score"].isin(ESTIMATORS)]
    assert np.allclose(estimators[["vs_baseline", "vs_ci_low", "vs_ci_high"]], 0.0)  # ties
    reversed_ = rank_agreement(_scored(6, 5, sign=-1.0), **INTERVAL)
    assert np.allclose(reversed_["tau"], -1.0) and (reversed_["ci_high"] < 0).all()


def test_too_few_candidates_or_seeds_say_so_instead_of_a_number():
    few = rank_agreement(_scored(MIN_CANDIDATES - 1, 5), **INTERVAL)
    assert few["tau"].isna().all() and few["note"].str.contains("candidates").all()
    short = rank_agreement(_scored(6, MIN_SEEDS - 1), **INTERVAL)
    assert short["tau"].notna().all() and short["ci_low"].isna().all()
    assert short["note"].str.contains("seeds").all()


def test_a_score_some_candidates_lack_ranks_the_others_and_is_not_set_against_baselines():
    """LEEP and NCE need a source classifier: for candidates without one (unsupervised
    sources) they are missing, their tau rests on the rest and says so, and no difference
    with the baselines (whose tau covers every candidate) is given."""
    scored = _scored(6, 5)
    scored.loc[scored["source"].isin(["c0", "c3"]), ["leep", "nce"]] = np.nan
    ranking = rank_agreement(scored, **INTERVAL).set_index("score")
    for score in ("leep", "nce"):
        assert ranking.loc[score, "tau"] == pytest.approx(1.0)
        assert "scores 4 of 6 candidates" in ranking.loc[score, "note"]
        assert np.isnan(ranking.loc[score, "vs_baseline"])
        assert np.isnan(ranking.loc[score, "vs_ci_low"])
    assert ranking.loc["logme", "vs_baseline"] == pytest.approx(0.0)


#: timm's hub repository of test_resnet's pretrained weights (fabricated in a local hub cache)
HUB_REPO = "models--timm--test_resnet.r160_in1k"


def _hub_cache(cache: Path) -> Path:
    """A Hugging Face hub cache holding test_resnet's hub weights as huggingface_hub lays them
    out (refs/main naming a snapshot): 1000 classes, seeded; no network is touched."""
    import timm
    from safetensors.torch import save_file

    commit = "0" * 40
    snapshot = cache / HUB_REPO / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (cache / HUB_REPO / "refs").mkdir()
    (cache / HUB_REPO / "refs" / "main").write_text(commit)
    torch.manual_seed(7)
    model = timm.create_model("test_resnet", num_classes=1000)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(snapshot / "model.safetensors"),
    )
    return cache


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Scratch and five candidates (three source stages, one weights file exported from a
    fourth source stage by transferlab-export, hub weights found in the local hub cache),
    three seeds, one learning rate."""
    from hydra import compose, initialize_config_dir

    import transferlab.cli.run  # noqa: F401 - registers the tl.uid resolver

    work = tmp_path_factory.mktemp("ranking")
    results = work / "results"
    before = os.environ.get("HF_HUB_CACHE")
    os.environ["HF_HUB_CACHE"] = str(_hub_cache(work / "hub"))  # read when weights are loaded

    def run(*overrides: str) -> dict:
        args = [
            *FAST,
            f"paths.results={results}",
            "study=rank",
            "threads=1",
            "logger=[csv]",
            "pretrain.seed=0",
            "target_size=40",
            *overrides,
        ]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return train(compose(config_name="config", overrides=args))

    run("init=source", "data@source=gratings", "study=maker")
    assert export_main([str(results / "maker"), "--to", str(work / "weights")]) == 0
    weights = work / "weights" / "gratings-e2-s0.safetensors"
    arms = [["init=scratch"], ["init=file", f"init_path={weights}"], ["init=hub"]]
    arms += [
        ["init=source", f"data@source={s}"]
        for s in ("shapes", "digits_rot45", "digits_label_permuted")
    ]
    for arm in arms:
        for seed in range(3):
            assert run(*arm, f"seed={seed}")["status"] == "completed"
    yield results
    if before is None:
        os.environ.pop("HF_HUB_CACHE", None)
    else:
        os.environ["HF_HUB_CACHE"] = before


def test_candidates_of_a_study_are_scored_on_the_budget_and_ranked(study):
    out = analyze(study / "rank", None, AnalysisSettings(figures=False, n_resamples=200))
    candidates, ranking = out["candidates"], out["ranking"]
    assert len(candidates) == 5 and set(candidates["seeds"]) == {3}
    assert {"gratings-e2-s0", "hub"} <= set(candidates["source"])  # file and hub candidates
    assert candidates[[*ESTIMATORS, *BASELINES]].notna().all().all()
    assert set(ranking["score"]) == {*ESTIMATORS, *BASELINES}
    assert ranking["tau"].between(-1, 1).all() and ranking["ci_low"].notna().all()
    assert (ranking["ci_low"] <= ranking["tau"]).all() and (
        ranking["tau"] <= ranking["ci_high"]
    ).all()
    assert (candidates["examples"] == 40).all()  # each seed's labelled budget, nothing more
    assert (ranking["candidates"] == 5).all()
    report = (study / "rank" / "analysis" / "report.md").read_text()
    assert "## Which initialisation to fine-tune" in report
