"""Which initialisation should I fine-tune? Candidates ranked by transferability estimators,
against the accuracy their fine-tuning reached.

A *candidate* is the initialisation of a fine-tuned arm: a source stage's checkpoint
(`init=source`), a weights file (`init=file`) or timm hub weights (`init=hub`). Candidates are
compared where everything else is equal: one target setting, one fine-tuning method and freeze
depth. Each is scored on each seed's labelled budget only (the examples that seed's run trained
and validated on: what a user choosing a model has), by LogME, LEEP, NCE, H-score and the k-NN
and linear-probe baselines (`estimators`). Its fine-tuned accuracy is the test accuracy of the
run its seed selected on validation (the analysis' selection rule).

The agreement of an estimator's ranking with the realised one is scipy's weighted Kendall tau
(hyperbolic weights: the top of the ranking counts most, as You et al. 2021 report it), on the
means over seeds; its interval resamples seeds (every candidate's score and accuracy of a seed
together) with a percentile bootstrap. Below `MIN_CANDIDATES` candidates or `MIN_SEEDS` seeds
the row says why no tau is given. An estimator is worth its cost only if it ranks better than
the simple baselines: its tau minus the better baseline's, with an interval from the same
resamples (paired by seed), says whether it does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import weightedtau

from transferlab._helpers import first_line
from transferlab.analysis.estimators import BASELINES, ESTIMATORS, all_estimators
from transferlab.analysis.keys import SCRATCH, SETTING

#: Fewest candidates a ranking is computed for (a tau of two items is +-1 whatever they are).
MIN_CANDIDATES = 3
#: Fewest seeds for the interval (resampling fewer gives no interval worth printing).
MIN_SEEDS = 3
#: What a candidate comparison holds fixed besides the target setting.
COMPARED = [*SETTING, "method", "freeze_depth"]
#: The settings that name a candidate.
CANDIDATE = ["source", "source_variant"]
SCORES = (*ESTIMATORS, *BASELINES)
#: Examples per forward pass when a candidate's predictions are computed.
OUTPUT_BATCH = 256
#: The identity settings that decide which examples a seed's labelled budget holds.
BUDGET_KEYS = (
    "image_size", "channels", "split_seed", "target_pool_share", "val_protocol", "val_share",
    "target_size", "seed",
)  # fmt: skip

#: (record, results root) -> (uint8 images, labels) of the record's labelled budget.
BudgetFn = Callable[[dict, Path], tuple[Any, np.ndarray]]
#: (record, results root, images) -> (features, softmax over the candidate's own labels).
OutputsFn = Callable[[dict, Path, Any], tuple[np.ndarray, np.ndarray]]


def labelled_budget(record: dict, root: Path) -> tuple[Any, np.ndarray]:
    """uint8 images and labels of the examples a target run trained and validated on (under
    `val_protocol=budget` both come out of its `target_size`; under `pool` its training
    subset), rebuilt from its record as the run drew them."""
    import torch

    from transferlab.data import budget_split, build_splits, stratified_subset

    ident, config = record["identity"], record["config"]
    splits = build_splits(
        record["target"]["spec"],
        image_size=int(ident["image_size"]),
        channels=int(ident["channels"]),
        split_seed=int(record["split_seed"]),
        pool="target",
        target_share=ident.get("target_pool_share"),
        data_mode="auto",
    )
    labels, size, seed = splits.train.labels, record["target_size"], int(record["seed"])
    if record.get("val_protocol") == "budget":
        train, val = budget_split(labels, size, seed, float(config["val_share"]))
        chosen = torch.cat([torch.as_tensor(train), torch.as_tensor(val)])
    else:
        chosen = torch.as_tensor(stratified_subset(labels, size, seed))
    chosen = chosen.sort().values
    return splits.train.images_at(chosen), labels[chosen].numpy()


def candidate_model(record: dict, root: Path) -> tuple[Any, Any]:
    """(model with the candidate's weights and its own classifier, input statistics) of the
    initialisation a fine-tuned run started from."""
    import timm

    from transferlab.models.factory import load_checkpoint_model
    from transferlab.models.inputs import UNIT_STATS, input_stats
    from transferlab.models.weights import resolve_hub_weights

    init = record["init"]
    if init == "source":
        model, meta = load_checkpoint_model(root / record["source_checkpoint"])
        stats = (meta["input_mean"], meta["input_std"]) if "input_mean" in meta else UNIT_STATS
        return model, stats
    config = record["config"]
    shape = {"in_chans": int(config["channels"]), "image_size": int(config["image_size"])}
    kwargs = dict(config["model"].get("kwargs") or {})
    if init == "file":  # the file's own classifier kept: LEEP and NCE read its predictions
        model = _with_own_head(record["model"], Path(config["init_path"]), shape, kwargs)
    elif (cached := resolve_hub_weights(record["model"])) is not None:  # as the run loaded it
        model = _with_own_head(record["model"], cached, shape, kwargs)
    else:  # hub weights timm downloads, with their own classifier
        model = timm.create_model(
            record["model"], pretrained=True, in_chans=shape["in_chans"], **kwargs
        )
    norm = str(config.get("input_norm", "model"))
    return model.eval(), input_stats(model, shape["in_chans"], norm)


def _with_own_head(name: str, path: Path, shape: dict, kwargs: dict) -> Any:
    """The model with a weights file's weights and its classifier of its own size (none when
    the file has none: features only), loaded as a run loads it (timm's loader adapts the stem
    to the channels and a ViT's position embedding to the size)."""
    from transferlab.models.factory import create_model
    from transferlab.models.weights import classifier_rows, read_weights_file

    rows = classifier_rows(name, read_weights_file(path)) or 0
    model, _ = create_model(
        name, num_classes=rows, init="file", init_path=str(path), **shape, **kwargs
    )
    return model


def candidate_outputs(record: dict, root: Path, images: Any) -> tuple[np.ndarray, np.ndarray]:
    """Features and softmax of the candidate a run started from, on `images`."""
    import torch

    from transferlab.models import extract_features
    from transferlab.models.inputs import prepare

    model, stats = candidate_model(record, root)
    features = extract_features(model, images, stats=stats).numpy()
    if getattr(model, "num_classes", None) == 0:  # trained without labels: no classifier
        return features, np.empty((len(features), 0))
    with torch.no_grad():
        logits = [
            model(prepare(images[i : i + OUTPUT_BATCH], stats)).float()
            for i in range(0, len(images), OUTPUT_BATCH)
        ]
    return features, torch.softmax(torch.cat(logits), dim=1).numpy()


def _capped(
    images: Any, labels: np.ndarray, max_examples: int | None, seed: int
) -> tuple[Any, np.ndarray]:
    if max_examples is None or len(labels) <= max_examples:
        return images, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(labels))[:max_examples])
    return images[keep], labels[keep]


def _budget_key(record: dict) -> str:
    """Which examples (and at which size and channels) a record's labelled budget holds."""
    ident = record["identity"]
    settings = {k: ident.get(k, record.get(k)) for k in BUDGET_KEYS}
    return json.dumps({"target": record["target"]["spec"], **settings}, sort_keys=True)


def _weights_key(record: dict) -> str:
    """What a candidate is, fed as it is fed: arms of one candidate at other depths share it."""
    init, config = record["init"], record["config"]
    fed = json.dumps(
        [record["model"], config["model"].get("kwargs"), config.get("input_norm")], default=str
    )
    if init == "source":
        return f"source:{record['source_checkpoint']}|{fed}"
    if init == "file":
        return f"file:{record['identity'].get('init_weights')}|{fed}"
    return f"hub|{fed}"


def score_candidates(
    selected: pd.DataFrame,
    root: Path,
    budget: BudgetFn = labelled_budget,
    outputs: OutputsFn = candidate_outputs,
    seed: int = 0,
    max_examples: int | None = None,
) -> pd.DataFrame:
    """One row per selected fine-tuned run (one per arm and seed, with its record file in
    `path`): its candidate, seed, test accuracy and every estimator's score on its seed's
    labelled budget (`status` says why one is missing). A candidate is scored once per budget,
    whichever arms share its weights. A budget larger than `max_examples` (a run on the whole
    pool) is scored on a seeded sample of that many of its examples."""
    rows = []
    budgets: dict[tuple, tuple[Any, np.ndarray]] = {}
    scores: dict[tuple, dict[str, float]] = {}
    for run in selected[~selected["source"].eq(SCRATCH)].itertuples(index=False):
        row = {k: getattr(run, k) for k in [*COMPARED, *CANDIDATE, "seed", "test_acc"]}
        try:
            record = json.loads(Path(run.path).read_text())
            key = _budget_key(record)
            if key not in budgets:
                budgets[key] = _capped(*budget(record, root), max_examples, seed)
            images, labels = budgets[key]
            scored = (key, _weights_key(record))
            if scored not in scores:
                features, probs = outputs(record, root, images)
                probs = probs if probs.shape[1] else None  # no classifier: no LEEP, no NCE
                scores[scored] = all_estimators(features, probs, labels, seed)
            rows.append({**row, "status": "ok", "reason": "", "n": len(labels), **scores[scored]})
        except Exception as exc:  # noqa: BLE001 - external weights and data: report, go on
            rows.append({**row, "status": "unavailable", "reason": first_line(exc)})
    columns = [*COMPARED, *CANDIDATE, "seed", "test_acc", "status", "reason", "n", *SCORES]
    return pd.DataFrame(rows).reindex(columns=columns)


def _weighted_tau(score: np.ndarray, acc: np.ndarray) -> float:
    """Weighted tau between candidates' scores and accuracies, over the candidates that have
    both (LEEP and NCE need a source classifier, which an unsupervised source lacks)."""
    both = ~(np.isnan(score) | np.isnan(acc))
    if both.sum() < MIN_CANDIDATES:
        return np.nan
    return float(weightedtau(score[both], acc[both])[0])


def _tau(table: pd.DataFrame, score: str) -> float:
    """Weighted tau between the mean score and the mean accuracy of each candidate."""
    means = table.groupby(CANDIDATE, dropna=False)[[score, "test_acc"]].mean()
    return _weighted_tau(
        means[score].to_numpy(dtype=float), means["test_acc"].to_numpy(dtype=float)
    )


def _scored(group: pd.DataFrame, score: str) -> int:
    """How many candidates a score scores (on any seed)."""
    return int(group.groupby(CANDIDATE, dropna=False)[score].mean().notna().sum())


def _per_seed(table: pd.DataFrame, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scores and accuracy of every row, as [seed, layer, candidate, column] (candidates
    sorted as `groupby` sorts them; layer k holds a candidate's k-th row of that seed, most
    often the only one; NaN where there is none), and whether a seed has a row of a candidate
    (as [seed, candidate])."""
    candidate = table.groupby(CANDIDATE, dropna=False).ngroup().to_numpy()
    seed = np.searchsorted(seeds, table["seed"].to_numpy())
    layer = table.groupby([table["seed"], candidate]).cumcount().to_numpy()
    columns = [*SCORES, "test_acc"]
    values = np.full((len(seeds), layer.max() + 1, candidate.max() + 1, len(columns)), np.nan)
    values[seed, layer, candidate] = table[columns].to_numpy(dtype=float)
    has_rows = np.zeros((len(seeds), values.shape[2]), dtype=bool)
    has_rows[seed, candidate] = True
    return values, has_rows


def _stacked_means(values: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """Each candidate's mean of each column over the drawn seeds' rows, summed in the order
    `groupby().mean()` sums the stacked rows (compensated, NaN left out), so that the means,
    and the ties among them, are the same as that."""
    total, compensation, count = (np.zeros(values.shape[2:]) for _ in range(3))
    for rows in values[drawn].reshape(-1, *values.shape[2:]):
        present = ~np.isnan(rows)
        step = np.where(present, rows, 0.0) - compensation
        summed = total + step
        compensation = np.where(present, (summed - total) - step, compensation)
        total = np.where(present, summed, total)
        count += present
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def _draws(table: pd.DataFrame, n_resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Every score's tau on the same seed resamples (with replacement; each drawn seed brings
    every candidate's score and accuracy; a draw that loses a candidate is drawn again)."""
    rng = np.random.default_rng(seed)
    seeds = np.sort(table["seed"].unique())
    values, has_rows = _per_seed(table, seeds)
    taus: dict[str, list[float]] = {score: [] for score in SCORES}
    while len(taus[SCORES[0]]) < n_resamples:
        drawn = np.searchsorted(seeds, rng.choice(seeds, size=len(seeds)))
        if not has_rows[drawn].any(axis=0).all():
            continue
        means = _stacked_means(values, drawn)
        for j, score in enumerate(SCORES):
            taus[score].append(_weighted_tau(means[:, j], means[:, -1]))
    return {score: np.asarray(values) for score, values in taus.items()}


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.nanquantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _rows(group: pd.DataFrame, base: dict, confidence: float, n_resamples: int, seed: int) -> list:
    """The rows of one comparison: each score's tau and interval; each estimator's difference
    from the better baseline, on the same resamples (paired), and its interval."""
    taus = {score: _tau(group, score) for score in SCORES}
    # the better baseline at the point estimate (a constant score has no tau: never it) ...
    baseline = max(BASELINES, key=lambda b: -np.inf if np.isnan(taus[b]) else taus[b])
    draws = _draws(group, n_resamples, seed) if base["seeds"] >= MIN_SEEDS else None
    note = "" if draws else f"fewer than {MIN_SEEDS} seeds with every candidate: no interval"
    rows = []
    for score in SCORES:
        row = {**base, "score": score, "tau": taus[score], "note": note}
        scored = _scored(group, score)
        partial = scored < base["candidates"]
        if partial:  # a tau over fewer candidates is not comparable with the baselines'
            why = f"scores {scored} of {base['candidates']} candidates (no source classifier)"
            row["note"] = "; ".join(filter(None, [why, note]))
        if score in ESTIMATORS and not partial:
            row.update(baseline=baseline, vs_baseline=taus[score] - taus[baseline])
        if draws:
            row["ci_low"], row["ci_high"] = _percentiles(draws[score], confidence)
            if score in ESTIMATORS and not partial:  # ... and per resample the better one
                best = np.fmax(*(draws[b] for b in BASELINES))
                row["vs_ci_low"], row["vs_ci_high"] = _percentiles(draws[score] - best, confidence)
        rows.append(row)
    return rows


def rank_agreement(
    scored: pd.DataFrame, *, confidence: float, n_resamples: int, seed: int
) -> pd.DataFrame:
    """Per comparison and score: weighted Kendall tau between the candidates' ranking by the
    score and by fine-tuned accuracy, with a seed-bootstrap interval; per estimator, its
    difference from the better of the two baselines (`baseline`) with a paired interval; or
    why there is none."""
    rows = []
    for key, group in scored[scored["status"].eq("ok")].groupby(COMPARED, dropna=False):
        # seeds where every candidate was scored and fine-tuned: pairs are then by seed
        counts = group.groupby("seed")[CANDIDATE[0]].transform("size")
        candidates = group.groupby(CANDIDATE, dropna=False).ngroups
        group = group[counts.eq(candidates)]
        base = {**dict(zip(COMPARED, key)), "candidates": candidates}
        base["seeds"] = group["seed"].nunique()
        if candidates < MIN_CANDIDATES:
            note = f"fewer than {MIN_CANDIDATES} candidates: no ranking"
            rows += [{**base, "score": score, "note": note} for score in SCORES]
            continue
        rows += _rows(group, base, confidence, n_resamples, seed)
    columns = [*COMPARED, "candidates", "seeds", "score", "tau", "ci_low", "ci_high"]
    columns += ["baseline", "vs_baseline", "vs_ci_low", "vs_ci_high", "note"]
    return pd.DataFrame(rows).reindex(columns=columns)


def candidate_table(scored: pd.DataFrame) -> pd.DataFrame:
    """Per comparison and candidate: mean fine-tuned accuracy and mean scores over seeds, the
    seeds and the labelled examples each score saw (`examples`, the budget's size)."""
    ok = scored[scored["status"].eq("ok")]
    columns = [*COMPARED, *CANDIDATE, "seeds", "examples", "test_acc", *SCORES]
    if ok.empty:
        return pd.DataFrame(columns=columns)
    grouped = ok.groupby([*COMPARED, *CANDIDATE], dropna=False)
    means = grouped[["test_acc", *SCORES]].mean()
    means = means.assign(seeds=grouped["seed"].nunique(), examples=grouped["n"].max())
    return means.reset_index().reindex(columns=columns)
