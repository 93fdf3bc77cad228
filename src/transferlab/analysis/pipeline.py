"""The analysis from records to conclusions: `analyze_frame` computes every table from a tidy
record table; `analyze` loads a study (or results root), computes, and writes the report folder
(and the W&B analysis run when asked).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.analysis import curves as cv
from transferlab.analysis.cells import build_cells
from transferlab.analysis.records import load_records
from transferlab.analysis.relation import estimator_agreement, shift_vs_gain
from transferlab.analysis.shift import DEFAULT_MAX_EXAMPLES, Backend, analyze_shift
from transferlab.analysis.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE, CORRECTIONS, TESTS
from transferlab.analysis.summary import source_summaries
from transferlab.errors import ConfigError, choice_error

DEFAULT_ALPHA = 0.05
#: Fewest examples per dataset for distances (the unbiased MMD and the PCA need a few).
MIN_EXAMPLES = 4
#: Name of the report folder inside the analysed path, by default.
REPORT_FOLDER = "analysis"


def check_settings(correction: str, alpha: float, test: str) -> None:
    """Raise ConfigError (one line) for a bad correction, alpha or test."""
    if correction not in CORRECTIONS:
        raise choice_error("correction", correction, CORRECTIONS)
    if test not in TESTS:
        raise choice_error("test", test, TESTS)
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")


def analyze_frame(
    df: pd.DataFrame,
    *,
    correction: str = "bh",
    alpha: float = DEFAULT_ALPHA,
    test: str = "auto",
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    convergence_fraction: float = cv.CONVERGENCE_FRACTION,
    seed: int = 0,
) -> dict[str, Any]:
    """Every comparison table from a tidy record table (see `load_records`); no I/O."""
    check_settings(correction, alpha, test)
    analysis = build_cells(df, correction=correction, alpha=alpha, test=test, confidence=confidence)
    curves = cv.learning_curves(analysis.selected, confidence)
    return {
        "cells": analysis.cells,
        "pairs": analysis.pairs,
        "selection": analysis.selection,
        "problems": analysis.problems,
        "summary": source_summaries(
            analysis.pairs,
            analysis.cells,
            confidence=confidence,
            n_resamples=n_resamples,
            seed=seed,
        ),
        "curves": curves,
        "crossings": cv.gain_crossings(analysis.cells, curves),
        "effective_data": cv.effective_data(curves),
        "best_depth": cv.best_depths(curves),
        "convergence": cv.convergence(analysis.pairs, convergence_fraction, confidence),
        "settings": {
            "correction": correction,
            "alpha": alpha,
            "test": test,
            "confidence": confidence,
            "n_resamples": n_resamples,
            "convergence_fraction": convergence_fraction,
            "seed": seed,
        },
    }


def _counts(df: pd.DataFrame) -> dict[str, Any]:
    return {
        "records": len(df),
        "studies": sorted(df["study"].dropna().unique().tolist()),
        "target_runs": int(df["stage"].eq("target").sum()),
        "source_runs": int(df["stage"].eq("source").sum()),
        "status": df["status"].value_counts().to_dict(),
    }


def analyze(
    path: str | Path,
    out_dir: str | Path | None = None,
    *,
    correction: str = "bh",
    alpha: float = DEFAULT_ALPHA,
    shift: bool = True,
    wandb: bool = False,
    test: str = "auto",
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    figures: bool = True,
    backend: Backend | None = None,
    cache_dir: str | Path | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Analyse a study folder (or every study of a results root) and write the report folder
    (default <path>/analysis): report.md, CSV tables, figures, cells.tex; returns the tables.

    ``shift`` computes distances and estimators from data and source checkpoints (slow part);
    ``wandb`` also logs the tables and figures as an analysis run in the study's W&B group.
    """
    check_settings(correction, alpha, test)
    if max_examples < MIN_EXAMPLES:
        raise ConfigError(f"max_examples must be at least {MIN_EXAMPLES}, got {max_examples!r}")
    started = time.perf_counter()
    df = load_records(path)
    loaded = time.perf_counter()
    results = analyze_frame(
        df,
        correction=correction,
        alpha=alpha,
        test=test,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )
    results["records"] = df
    results["unreadable"] = pd.DataFrame(df.attrs.get("unreadable", []), columns=["path", "reason"])
    results["counts"] = _counts(df)
    results["path"] = str(Path(path).resolve())
    if shift:
        shift_df, est = analyze_shift(
            df,
            results_root=df.attrs["results_root"],
            backend=backend,
            cache_dir=cache_dir,
            max_examples=max_examples,
            seed=seed,
        )
        joined, agreement = estimator_agreement(
            est, results["curves"], confidence=confidence, n_resamples=n_resamples, seed=seed
        )
        results.update(
            shift=shift_df,
            estimators=est,
            estimator_accuracy=joined,
            shift_gain=shift_vs_gain(
                shift_df,
                results["cells"],
                confidence=confidence,
                n_resamples=n_resamples,
                seed=seed,
            ),
            estimator_agreement=agreement,
        )
    results["timing"] = {"load_s": loaded - started, "analyse_s": time.perf_counter() - loaded}
    out = Path(out_dir) if out_dir is not None else Path(path) / REPORT_FOLDER
    from transferlab.analysis.report import write_report

    results["files"] = write_report(results, out, figures=figures)
    if wandb:
        from transferlab.analysis.wandb_log import log_analysis

        results["wandb_dir"] = log_analysis(results, out)
    return results
