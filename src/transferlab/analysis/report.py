"""The report folder: report.md (findings first, then the tables, each number explained next to
it), one CSV per table, the figures and a LaTeX table of the cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.analysis import figures as fg
from transferlab.analysis.estimators import BASELINES, ESTIMATORS
from transferlab.analysis.findings import findings
from transferlab.analysis.keys import PAIR
from transferlab.analysis.selection import RULES
from transferlab.analysis.shift import DISTANCES, SHIFT_MEASURES
from transferlab.analysis.tables import (
    CELL_COLUMNS,
    latex_cells,
    markdown_table,
)

#: The tables written as CSV next to report.md (and logged to W&B).
CSV_TABLES = (
    "cells",
    "selection",
    "summary",
    "methods",
    "objectives",
    "adaptation",
    "adaptation_shift",
    "drift",
    "drift_gain",
    "forgetting",
    "drift_shift",
    "curves",
    "crossings",
    "effective_data",
    "transfer_law",
    "best_depth",
    "convergence",
    "problems",
    "unreadable",
    "shift",
    "shift_gain",
    "estimators",
    "estimator_agreement",
    "candidates",
    "ranking",
)
#: Columns of a table that was not computed, so its CSV still has a header.
EMPTY = {
    "shift": [*PAIR, "space", "status", *DISTANCES, "reason"],
    "estimators": [*PAIR, "status", *ESTIMATORS, *BASELINES, "reason"],
}


#: How each validation protocol is named wherever a selected value is reported.
PROTOCOL_NAMES = {
    "budget": "held out of each arm's own labelled budget (`val_protocol=budget`)",
    "pool": "the dataset's fixed validation set, labels a few-shot user would not have: "
    "**oracle validation** (`val_protocol=pool`)",
}


def _protocols(cells: pd.DataFrame) -> str:
    """The validation protocols the cells' selections used, by name."""
    used = sorted(set(cells.get("ft_val_protocol", pd.Series(dtype=str)).dropna()))
    return "; ".join(PROTOCOL_NAMES.get(p, p) for p in used) or "none"


def _cell_tables(results: dict[str, Any]) -> list[str]:
    """The cells, the configurations chosen on validation and the per-source summary."""
    chosen = results["selection"]
    chosen = chosen[chosen["chosen"]] if len(chosen) else chosen
    rule = RULES[results["settings"]["selection"]]
    parts = [
        "## Cells",
        "",
        "_One row per cell; gain/CI/p/q as above; flag = positive | negative | inconclusive | "
        "too-few-seeds | single-seed | missing-baseline | no-selection | no-paired-seeds | "
        "no-completed-runs; "
        "variant / source_variant = the other settings that vary in this study (shared by both "
        "arms / of the source stage only; empty when nothing else varies); ft_lr / scratch_lr = "
        "the learning rate most of each arm's seeds chose on validation (by the rule in the "
        "`selection` column; ft_lr_mode_seeds of ft_seeds chose it)._",
        "",
        markdown_table(results["cells"], CELL_COLUMNS, csv_name="cells.csv"),
        "## Hyper-parameters chosen on validation",
        "",
        f"_Selection rule: {rule.name}. {rule.description} n_chosen = seeds that chose the "
        "configuration; val_acc = its mean over completed seeds. Test accuracy played no part. "
        f"Validation: {_protocols(results['cells'])}._",
        "",
        markdown_table(chosen, csv_name="selection.csv"),
        "## Per-source summary",
        "",
        markdown_table(results["summary"], csv_name="summary.csv"),
    ]
    if len(results.get("methods", ())):
        parts += _method_tables(results["methods"])
    if len(results.get("objectives", ())):
        parts += _objective_table(results["objectives"])
    if len(results.get("adaptation", ())):
        parts += _adaptation_tables(results)
    if results.get("drift") is not None and len(results["drift"]):
        parts += _drift_tables(results)
    return parts


def _drift_tables(results: dict[str, Any]) -> list[str]:
    """Accuracy against step per strategy, gains over scratch, forgetting, shift against gain."""
    return [
        "## Drift",
        "",
        "_Per strategy and step of the drift chain: mean test accuracy on the step's test set "
        "over seeds, with its interval (each seed's learning rate chosen on validation); "
        "static = step 0's model never updated, tested on each later step; source = fine-tuned "
        "from the source at each step; sequential = fine-tuned from the previous step's "
        "selected weights; scratch = trained from scratch at each step._",
        "",
        markdown_table(results["drift"], csv_name="drift.csv"),
        "",
        "_Each strategy against scratch at each step, paired by seed: gain, its interval, p, q "
        "(corrected across the study's steps and strategies), vs_scratch = better | worse | "
        "inconclusive; stops_helping = the first step from which the strategy is never again "
        "significantly better than scratch (empty: it still helps at the last step)._",
        "",
        markdown_table(results.get("drift_gain"), csv_name="drift_gain.csv"),
        "",
        "_Forgetting: the sequential model's accuracy on step 0's test set after training at "
        "each step (step0_acc), and its paired drop from step 0's own accuracy there "
        "(forgotten, above 0: forgotten), with intervals over seeds._",
        "",
        markdown_table(results.get("forgetting"), csv_name="forgetting.csv"),
        "",
        "_Measured shift against gain across steps: rank correlation of each distance between "
        "the source and the step's target (Domain shift) with the mean gain of fine-tuning "
        "from the source over scratch; permutation p exact over every ordering of up to 7 "
        "steps; bootstrap intervals over steps._",
        "",
        markdown_table(results.get("drift_shift"), csv_name="drift_shift.csv"),
    ]


def _adaptation_tables(results: dict[str, Any]) -> list[str]:
    """Each adaptation method against source_only, and the shift on the adapted features."""
    table = results["adaptation"]
    oracle = table["adapt_selection"].eq("oracle").any()
    return [
        "## Domain adaptation",
        "",
        "_Each adaptation arm (dann, coral) against source_only from the same source model on "
        "the same target, paired by seed; every arm's learning rate and epoch chosen on the "
        "validation set its `adapt_selection` names (source = the source's, no target label "
        "read; **oracle** = the target's labelled validation set, paired only with oracle): "
        "source_only_acc / method_acc = mean test accuracy on the target; d_vs_source_only = "
        "their paired difference (above 0: adaptation helped), its interval, p and q "
        "(corrected per study); vs_source_only = better | worse | inconclusive | "
        "too-few-seeds | too-few-pairs; negative_adaptation = significantly worse than not "
        "adapting._"
        + (
            " Oracle rows used target labels to select and are not an unsupervised result."
            if oracle
            else ""
        ),
        "",
        markdown_table(table, csv_name="adaptation.csv"),
        "## Shift on the adapted features",
        "",
        "_The distance between the source's and the target's test sets on each selected "
        "model's features (as in Domain shift), source_only's and the adapted arm's (means over "
        "paired seeds); change = adapted minus source_only with its paired interval and p "
        "(below 0: adaptation shrank the measured shift); spearman = rank correlation across "
        "seeds of the shrinkage with the accuracy gain over source_only (above 0: seeds whose "
        "shift shrank more gained more), bootstrap interval, permutation p, q across the "
        "study's arms and distances._",
        "",
        markdown_table(results["adaptation_shift"], csv_name="adaptation_shift.csv"),
    ]


def _objective_table(objectives: pd.DataFrame) -> list[str]:
    """Each source pre-trained without labels against the supervised source of its data."""
    return [
        "## Source objectives",
        "",
        "_Each arm whose source was pre-trained without labels (denoising, rotation) against "
        "the arm from the supervised source of the same data, with the same method and freeze "
        "depth on the same target setting, paired by seed: d_vs_supervised = mean "
        "test-accuracy difference (above 0: pre-training without labels transferred better), "
        "its interval, p and q (corrected per study as the cells); vs_supervised = better | "
        "worse | inconclusive | too-few-seeds | too-few-pairs; gain_vs_scratch / vs_scratch = "
        "the arm's own cell; supervised_vs_scratch = the supervised arm's cell._",
        "",
        markdown_table(objectives, csv_name="objectives.csv"),
    ]


def _method_tables(methods: pd.DataFrame) -> list[str]:
    """Each fine-tuning method against plain full fine-tuning, and where it removes negative
    transfer."""
    rescued = methods[methods["rescues"].ne("")]
    caused = methods[methods["causes"].ne("")]
    lines = [
        f"- {r.method or 'finetune'} (depth {r.freeze_depth}), {r.source} \u2192 {r.target} at "
        f"{r.target_size} examples: {r.rescues} (gain vs scratch {r.gain_vs_scratch:+.3f})"
        for r in rescued.itertuples()
    ]
    causing = [
        f"- {r.method or 'finetune'} (depth {r.freeze_depth}), {r.source} \u2192 {r.target} at "
        f"{r.target_size} examples: {r.causes} (gain vs scratch {r.gain_vs_scratch:+.3f})"
        for r in caused.itertuples()
    ]
    return [
        "## Method comparison",
        "",
        "_Each fine-tuned arm against plain full fine-tuning (`finetune`, depth 0) from the same "
        "source on the same target setting, paired by seed: d_vs_finetune = mean test-accuracy "
        "difference (above 0: the method is better), its interval, p and q (corrected per study "
        "as the cells); vs_finetune = better | worse | inconclusive | too-few-seeds | "
        "too-few-pairs; gain_vs_scratch / vs_scratch = the arm's own cell; finetune_vs_scratch "
        "= the reference's cell; rescues = where the method beats plain fine-tuning and "
        "removes its negative transfer; causes = where the method is worse than plain "
        "fine-tuning and negative against scratch while plain fine-tuning is not._",
        "",
        *(lines or ["No method removes a negative transfer of plain fine-tuning here."]),
        *(causing or ["No method causes a negative transfer plain fine-tuning does not show."]),
        "",
        markdown_table(methods, csv_name="methods.csv"),
    ]


def _curve_tables(results: dict[str, Any]) -> list[str]:
    """Learning curves, effective data, best freeze depth and convergence."""
    s = results["settings"]
    return [
        "## Learning curves",
        "",
        "_test_acc = mean test accuracy over seeds at the chosen hyper-parameters, "
        f"[ci_low, ci_high] its {int(100 * s['confidence'])}% t-interval; examples = training "
        "examples used._",
        "",
        markdown_table(results["curves"], csv_name="curves.csv"),
        "## Effective data transferred",
        "",
        "_d_e = scratch examples that reach the fine-tuned accuracy (read off the scratch curve, "
        "linear in log size); d_t = d_e - d_f extra examples the source is worth (Hernandez et "
        "al. 2021); empty where the accuracy lies outside the scratch curve (see note)._",
        "",
        markdown_table(results["effective_data"], csv_name="effective_data.csv"),
        "## Transfer law",
        "",
        "_Per fine-tuned curve over at least three target sizes: D_T = k * D_F^alpha fitted "
        "through the sizes where d_t > 0 (least squares in log-log; r2 its fit), "
        f"[alpha_low, alpha_high] a {int(100 * s['confidence'])}% seed-bootstrap interval "
        "(seeds resampled jointly across sizes); fitted_share = resamples that could be fitted. "
        "Hernandez et al. 2021 report alpha < 1: the data a source is worth grows more slowly "
        "than the target set._",
        "",
        markdown_table(results["transfer_law"], csv_name="transfer_law.csv"),
        "## Best freeze depth",
        "",
        "_Chosen on validation accuracy._",
        "",
        markdown_table(results["best_depth"], csv_name="best_depth.csv"),
        "## Convergence",
        "",
        f"_Validation epochs until a run reaches {s['convergence_fraction']:.0%} of the paired "
        "scratch run's final validation accuracy; difference = fine-tuned minus scratch; *_never = "
        "runs that never got there._",
        "",
        markdown_table(results["convergence"], csv_name="convergence.csv"),
    ]


def _shift_tables(results: dict[str, Any]) -> list[str]:
    """Domain shift, its relation to the gain, and the transferability estimators."""
    if "shift" not in results:
        return []
    return [
        "## Domain shift",
        "",
        "_Per (source, target) pair, in pixel space and in the source model's feature space: "
        "mmd2 = unbiased MMD^2 (RBF, median bandwidth) with permutation p mmd_p; proxy_a = "
        "2(1 - 2 err) of a linear domain classifier on held-out data; frechet = Frechet "
        "distance of Gaussian fits; otdd = OT dataset distance with Gaussian label costs "
        "(Frechet and OTDD on at most 64 principal components)._",
        "",
        markdown_table(results["shift"], csv_name="shift.csv"),
        "## Shift against gain",
        "",
        "_Rank correlation across pairs between each distance and the pair gain (mean gain "
        "at full fine-tuning); intervals from a bootstrap over pairs._",
        "",
        markdown_table(results["shift_gain"], csv_name="shift_gain.csv"),
        "## Transferability estimators",
        "",
        "_LogME, LEEP, NCE, H-score of the source model on the target training data before "
        "fine-tuning (higher = more transferable)._",
        "",
        markdown_table(results["estimators"], csv_name="estimators.csv"),
        "## Estimators against realised accuracy",
        "",
        "_Kendall tau (with p and bootstrap interval) and weighted tau between each score "
        "and the fine-tuned test accuracy across sources._",
        "",
        markdown_table(results["estimator_agreement"], csv_name="estimator_agreement.csv"),
        "## Which initialisation to fine-tune",
        "",
        "_Each candidate initialisation (a source checkpoint, a weights file, hub weights) of "
        "one target setting, method and freeze depth: its fine-tuned test accuracy (the run "
        "each seed selected on validation) and each estimator's score on that seed's labelled "
        "budget only, means over seeds (`candidates.csv`); then, per estimator, the weighted "
        "Kendall tau between its ranking and the fine-tuned one (top ranks weigh most), with a "
        "95% interval resampling seeds (`ranking.csv`)._",
        "",
        markdown_table(results.get("candidates"), csv_name="candidates.csv"),
        "",
        markdown_table(results.get("ranking"), csv_name="ranking.csv"),
    ]


def _tables(results: dict[str, Any], figure_paths: list[Path], out: Path) -> list[str]:
    """Every table of report.md, then the figures."""
    parts = _cell_tables(results) + _curve_tables(results) + _shift_tables(results)
    parts += [
        "## Runs that enter no number",
        "",
        "_Failed, diverged, conflicting and duplicate runs, and rejected record files (status "
        "`rejected`, with the reason)._",
        "",
        markdown_table(results["problems"], csv_name="problems.csv"),
        "## Rejected record files",
        "",
        markdown_table(results.get("unreadable"), csv_name="unreadable.csv"),
        "## Figures",
        "",
    ]
    parts += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in figure_paths]
    return parts


def write_report(results: dict[str, Any], out: str | Path, *, figures: bool = True) -> dict:
    """Write report.md, the CSVs, cells.tex and the figures under ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    for name in CSV_TABLES:
        table = results.get(name)
        if table is None:
            table = pd.DataFrame(columns=EMPTY.get(name, []))
        path = out / f"{name}.csv"
        table.to_csv(path, index=False)
        files[name] = path
    files["latex"] = out / "cells.tex"
    files["latex"].write_text(latex_cells(results["cells"]))
    figure_paths: list[Path] = []
    if figures:
        fig_dir = out / "figures"
        figure_paths += fg.gain_heatmaps(results["cells"], fig_dir)
        figure_paths += fg.learning_curves(results["curves"], fig_dir)
        figure_paths += fg.freeze_profiles(results["curves"], fig_dir)
        figure_paths += fg.adaptation_figure(
            results.get("adaptation"), results.get("adaptation_shift"), fig_dir
        )
        figure_paths += fg.drift_figure(results.get("drift"), results.get("forgetting"), fig_dir)
        if "shift" in results:
            figure_paths += fg.gain_vs_shift(
                results["shift"], results["cells"], results["shift_gain"], fig_dir, SHIFT_MEASURES
            )
            figure_paths += fg.estimator_vs_accuracy(results["estimator_accuracy"], fig_dir)
    files["figures"] = figure_paths
    counts = results.get("counts", {})
    head = [
        f"# Transfer analysis: {', '.join(counts.get('studies', [])) or 'no study'}",
        "",
        f"Source: `{results.get('path', '')}`; {counts.get('records', 0)} records "
        f"({counts.get('target_runs', 0)} target runs, {counts.get('source_runs', 0)} source "
        f"runs; status {counts.get('status', {})}).",
        "",
    ]
    text = "\n".join(head + findings(results) + _tables(results, figure_paths, out))
    files["report"] = out / "report.md"
    files["report"].write_text(text + "\n")
    return files
