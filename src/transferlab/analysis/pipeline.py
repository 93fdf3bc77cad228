"""The analysis from records to conclusions: `analyze_frame` computes every table from a tidy
record table; `analyze` loads a study (or results root), computes, and writes the report folder
(and the W&B analysis run when asked).
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.analysis import curves as cv
from transferlab.analysis import drift as dr
from transferlab.analysis.adaptation import adaptation_comparison, adaptation_shift
from transferlab.analysis.cells import build_cells, in_cells
from transferlab.analysis.methods import method_comparison
from transferlab.analysis.objectives import objective_comparison
from transferlab.analysis.ranking import candidate_table, rank_agreement, score_candidates
from transferlab.analysis.records import load_records
from transferlab.analysis.relation import estimator_agreement, shift_vs_gain
from transferlab.analysis.selection import RULES
from transferlab.analysis.settings import AnalysisSettings
from transferlab.analysis.shift import Backend, analyze_shift
from transferlab.analysis.summary import source_summaries
from transferlab.analysis.transfer_law import transfer_law

#: Name of the report folder inside the analysed path, by default.
REPORT_FOLDER = "analysis"


def _settings(settings: AnalysisSettings | None, overrides: dict[str, Any]) -> AnalysisSettings:
    settings = replace(settings or AnalysisSettings(), **overrides)
    settings.check()
    return settings


def analyze_frame(
    df: pd.DataFrame, settings: AnalysisSettings | None = None, **overrides: Any
) -> dict[str, Any]:
    """Every comparison table from a tidy record table (see `load_records`); no I/O.

    `overrides` replace fields of `settings` (e.g. ``analyze_frame(df, n_resamples=100)``).
    """
    s = _settings(settings, overrides)
    analysis = build_cells(
        df,
        correction=s.correction,
        alpha=s.alpha,
        test=s.test,
        confidence=s.confidence,
        rule=RULES[s.selection],
    )
    curves = cv.learning_curves(analysis.selected[in_cells(analysis.selected)], s.confidence)
    methods = method_comparison(
        analysis.pairs,
        analysis.cells,
        correction=s.correction,
        alpha=s.alpha,
        test=s.test,
        confidence=s.confidence,
        margin=s.margin,
    )
    objectives = objective_comparison(
        analysis.pairs,
        analysis.cells,
        correction=s.correction,
        alpha=s.alpha,
        test=s.test,
        confidence=s.confidence,
    )
    judged = {"correction": s.correction, "test": s.test, "confidence": s.confidence}
    drift_runs = dr.select_drift_runs(df)
    drift = {
        "drift": dr.accuracy_by_step(drift_runs, s.confidence) if len(drift_runs) else None,
        "drift_gain": dr.gain_by_step(drift_runs, alpha=s.alpha, **judged)
        if len(drift_runs)
        else None,
        "forgetting": dr.forgetting(drift_runs, s.confidence) if len(drift_runs) else None,
    }
    return {
        **drift,
        "cells": analysis.cells,
        "selected": analysis.selected,
        "methods": methods,
        "objectives": objectives,
        "adaptation": adaptation_comparison(analysis.selected, alpha=s.alpha, **judged),
        "adaptation_shift": adaptation_shift(
            analysis.selected, n_resamples=s.n_resamples, seed=s.seed, **judged
        ),
        "pairs": analysis.pairs,
        "selection": analysis.selection,
        "problems": analysis.problems,
        "summary": source_summaries(
            analysis.pairs,
            analysis.cells,
            confidence=s.confidence,
            n_resamples=s.n_resamples,
            seed=s.seed,
        ),
        "curves": curves,
        "crossings": cv.gain_crossings(analysis.cells, curves),
        "effective_data": cv.effective_data(curves),
        "transfer_law": transfer_law(
            analysis.selected[in_cells(analysis.selected)],
            confidence=s.confidence,
            n_resamples=s.n_resamples,
            seed=s.seed,
        ),
        "best_depth": cv.best_depths(curves),
        "convergence": cv.convergence(analysis.pairs, s.convergence_fraction, s.confidence),
        "settings": asdict(s),
    }


def with_rejected(problems: pd.DataFrame, rejected: pd.DataFrame) -> pd.DataFrame:
    """The problems table with one `rejected` row per record file the loader refused."""
    if rejected.empty:
        return problems
    rows = pd.DataFrame(
        {
            "run_id": [Path(p).stem for p in rejected["path"]],
            "status": "rejected",
            "error": rejected["reason"].to_numpy(),
        }
    )
    return pd.concat([problems, rows], ignore_index=True)


def _counts(df: pd.DataFrame) -> dict[str, Any]:
    return {
        "records": len(df),
        "studies": sorted(df["study"].dropna().unique().tolist()),
        "target_runs": int(df["stage"].eq("target").sum()),
        "source_runs": int(df["stage"].eq("source").sum()),
        "status": df["status"].value_counts().to_dict(),
    }


def shift_tables(
    df: pd.DataFrame,
    results: dict[str, Any],
    s: AnalysisSettings,
    backend: Backend | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Domain distances and estimators, and how they relate to the realised transfer."""
    intervals = {"confidence": s.confidence, "n_resamples": s.n_resamples, "seed": s.seed}
    shift_df, est = analyze_shift(
        df,
        results_root=df.attrs["results_root"],
        backend=backend,
        cache_dir=cache_dir,
        max_examples=s.max_examples,
        seed=s.seed,
    )
    related = {**intervals, "correction": s.correction}
    joined, agreement = estimator_agreement(est, results["curves"], **related)
    root = Path(df.attrs["results_root"])
    scored = score_candidates(results["selected"], root, seed=s.seed, max_examples=s.max_examples)
    drift_shift = None
    if results.get("drift") is not None:
        drift_shift = dr.shift_against_gain(
            shift_df, results["drift_gain"], results["drift"], s.correction, **intervals
        )
    return {
        "drift_shift": drift_shift,
        "candidates": candidate_table(scored),
        "ranking": rank_agreement(scored, **intervals),
        "shift": shift_df,
        "estimators": est,
        "estimator_accuracy": joined,
        "shift_gain": shift_vs_gain(shift_df, results["cells"], **related),
        "estimator_agreement": agreement,
    }


def analyze(
    path: str | Path,
    out_dir: str | Path | None = None,
    settings: AnalysisSettings | None = None,
    *,
    wandb: bool = False,
    backend: Backend | None = None,
    cache_dir: str | Path | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Analyse a study folder (or every study of a results root) and write the report folder
    (default <path>/analysis): report.md, CSV tables, figures, cells.tex; returns the tables.

    ``wandb`` also logs the tables and figures as an analysis run in the study's W&B group;
    ``backend`` and ``cache_dir`` say where shift data and features come from and are kept.
    """
    s = _settings(settings, overrides)
    started = time.perf_counter()
    df = load_records(path)
    loaded = time.perf_counter()
    results = analyze_frame(df, s)
    results["records"] = df
    results["unreadable"] = pd.DataFrame(df.attrs.get("unreadable", []), columns=["path", "reason"])
    results["problems"] = with_rejected(results["problems"], results["unreadable"])
    results["counts"] = _counts(df)
    results["path"] = str(Path(path).resolve())
    if s.shift:
        results.update(shift_tables(df, results, s, backend, cache_dir))
    results["timing"] = {"load_s": loaded - started, "analyse_s": time.perf_counter() - loaded}
    out = Path(out_dir) if out_dir is not None else Path(path) / REPORT_FOLDER
    from transferlab.analysis.report import write_report

    results["files"] = write_report(results, out, figures=s.figures)
    if wandb:
        from transferlab.analysis.wandb_log import log_analysis

        results["wandb_dir"] = log_analysis(results, out)
    return results
