"""Model selection rules as small named objects (as DomainBed's model_selection.py): which run
stands for an arm on each seed. Test accuracy never plays a part. The rule's name is printed
next to every selected value (cells.csv, report.md).

The default rule selects per seed: the learning-rate search is part of the learning algorithm,
so each seed's arm searches its grid on its own validation split and the paired difference is
between the runs each seed selected. The paired test then sees the search's noise in the
spread of the differences. Choosing one configuration per arm from the mean over the very seeds
the test compares (`BestMeanValidation`) treats a noisy choice as fixed: with small validation
sets, one unlucky choice for a scratch arm moves every cell that shares it, and a study with no
true effect flags cells far more often than alpha allows (tests/test_analysis_selection.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from transferlab.analysis.keys import ARM

#: A swept setting is reported at the edge of its arm's grid when at least this share of the
#: arm's seeds selected its smallest or largest value: the optimum may lie outside the grid.
EDGE_SHARE = 0.5
#: Statuses that settle a configuration on a seed: a diverged run is a bad choice the search
#: made, a failed or missing one means the search was not done.
SETTLED = ("completed", "diverged")


@dataclass
class Selection:
    """What a rule chose.

    configs: every configuration of every arm with its mean validation accuracy over completed
    seeds, its completed and diverged counts, `n_chosen` (seeds that selected it), `chosen`
    (selected by at least one seed) and `edge` (where chosen, its settings at an edge of the
    arm's grid); picks: per (arm, seed) the configuration selected (ARM,
    seed and the swept settings); arms: per arm, each swept setting's value selected by most
    seeds (`<h>`, ties to the smaller), how many seeds selected it (`<h>_mode_seeds`), seeds
    selected (`seeds`), seeds left out because their grid is incomplete (`incomplete`), seeds
    whose every configuration diverged (`all_diverged`), and `edge`.
    """

    configs: pd.DataFrame
    picks: pd.DataFrame
    arms: pd.DataFrame


def _configs(runs: pd.DataFrame, hparams: tuple[str, ...]) -> pd.DataFrame:
    """Every configuration of every arm: mean validation accuracy over completed seeds,
    completed seeds and diverged runs."""
    done = runs["status"].eq("completed")
    runs = runs.assign(
        _val=runs["val_acc"].where(done),
        _seed=runs["seed"].where(done),
        _diverged=runs["status"].eq("diverged"),
    )
    return (
        runs.groupby(ARM + list(hparams), dropna=False, sort=True)
        .agg(
            val_acc=("_val", "mean"),
            n_seeds=("_seed", "nunique"),
            n_diverged=("_diverged", "sum"),
        )
        .reset_index()
    )


def grid_edges(configs: pd.DataFrame, hparams: tuple[str, ...]) -> pd.Series:
    """Per configuration, the swept settings at the smallest or largest value its arm tried
    ("lr at the top of the grid"); empty when interior or not swept."""
    marks = pd.Series("", index=configs.index)
    for h in hparams:
        values = configs.groupby(ARM, dropna=False)[h]
        swept = values.transform("nunique") > 1
        for side, bound in (("top", values.transform("max")), ("bottom", values.transform("min"))):
            at = swept & configs[h].eq(bound)
            marks = marks.where(~at, marks + f"{h} at the {side} of the grid; ")
    return marks.str.rstrip("; ")


def _config_key(runs: pd.DataFrame, hparams: tuple[str, ...]) -> pd.Series | str:
    """One string per run naming its configuration ("0.001|32"), built column by column."""
    if not hparams:
        return "all"
    key = runs[hparams[0]].astype(str)
    for h in hparams[1:]:
        key = key + "|" + runs[h].astype(str)
    return key


def _modes(picks: pd.DataFrame, hparams: tuple[str, ...]) -> pd.DataFrame:
    """Per arm: the seeds selected, and for each swept setting the value most seeds selected
    (ties to the smaller) with how many selected it (`<setting>_mode_seeds`)."""
    modes = picks.groupby(ARM, dropna=False).size().rename("seeds").reset_index()
    for h in hparams:
        count = f"{h}_mode_seeds"
        counts = picks.groupby([*ARM, h], dropna=False).size().rename(count).reset_index()
        ranked = counts.sort_values([count, h], ascending=[False, True], kind="stable")
        modes = modes.merge(ranked.drop_duplicates(ARM), on=ARM, how="left")
        # Plain values, as a table of them infers its types (an Int64 setting reads as int64).
        modes[h] = modes[h].astype(object)
    return modes.infer_objects()


def _edges(picks: pd.DataFrame, configs: pd.DataFrame, hparams: tuple[str, ...]) -> pd.DataFrame:
    """Per arm, the swept settings that at least EDGE_SHARE of its seeds selected at the
    smallest or largest value of its grid ("lr at the top of the grid")."""
    edges = picks.groupby(ARM, dropna=False).size().rename("_seeds").reset_index()
    edges["edge"] = ""
    grid = configs.groupby(ARM, dropna=False)
    for h in hparams:
        bounds = grid[h].agg(["nunique", "max", "min"]).reset_index()
        picked = picks.merge(bounds, on=ARM, how="left")
        for side, bound in (("top", "max"), ("bottom", "min")):
            at_bound = picked["nunique"].ge(2) & picked[h].eq(picked[bound])
            # the same arms, in the same (sorted) order as `edges`: both group the picks
            at = at_bound.groupby([picked[k] for k in ARM], dropna=False).sum().to_numpy()
            marked = (at > 0) & (at >= EDGE_SHARE * edges["_seeds"].to_numpy())
            edges["edge"] = edges["edge"].where(
                ~marked, edges["edge"] + f"{h} at the {side} of the grid; "
            )
    edges["edge"] = edges["edge"].str.rstrip("; ")
    return edges[[*ARM, "edge"]]


def _arms(
    runs: pd.DataFrame, picks: pd.DataFrame, configs: pd.DataFrame, hparams: tuple[str, ...]
) -> pd.DataFrame:
    """Per arm: the modal selection of each swept setting, seeds selected and left out."""
    arms = runs[ARM].drop_duplicates().merge(_modes(picks, hparams), on=ARM, how="left")
    arms["seeds"] = arms["seeds"].fillna(0).astype(int)
    return arms.merge(_edges(picks, configs, hparams), on=ARM, how="left").fillna({"edge": ""})


def _with_choices(
    configs: pd.DataFrame, picks: pd.DataFrame, hparams: tuple[str, ...]
) -> pd.DataFrame:
    """`n_chosen` (seeds that picked each configuration), `chosen` and, where chosen, `edge`."""
    keys = ARM + list(hparams)
    n_chosen = picks.groupby(keys, dropna=False).size().rename("n_chosen").reset_index()
    configs = configs.merge(n_chosen, on=keys, how="left")
    configs["n_chosen"] = configs["n_chosen"].fillna(0).astype(int)
    configs["chosen"] = configs["n_chosen"].gt(0)
    configs["edge"] = grid_edges(configs, hparams).where(configs["chosen"], "")
    return configs


class PerSeedValidation:
    """Per arm and seed, the configuration with the best validation accuracy among those the
    seed completed (ties to the lower validation NLL, then to the smaller settings). A seed is
    selected only where its whole grid is settled (each configuration completed or diverged):
    a failed or missing run would make it another search, so such a seed is left out and
    counted (`incomplete`); a seed whose every configuration diverged has no selected run
    (`all_diverged`)."""

    name = "best validation accuracy per seed"
    description = (
        "Each seed of each arm chose the configuration with its best validation accuracy "
        "(ties to the lower validation NLL); a seed whose grid has a failed or missing run "
        "chose nothing."
    )

    def select(self, runs: pd.DataFrame, hparams: tuple[str, ...]) -> Selection:
        """Pick one run per (arm, seed) and summarise the picks (see `Selection`)."""
        configs = _configs(runs, hparams)
        runs = runs.assign(_config=_config_key(runs, hparams))
        grid = runs.groupby(ARM, dropna=False)["_config"].transform("nunique")
        settled = runs["status"].isin(SETTLED)
        per_seed = (
            runs["_config"].where(settled).groupby([runs[k] for k in [*ARM, "seed"]], dropna=False)
        )
        complete = per_seed.transform("nunique").eq(grid)
        done = runs[complete & runs["status"].eq("completed")]
        ranked = done.sort_values(
            ["val_acc", "val_nll", *hparams],
            ascending=[False, True, *[True] * len(hparams)],
            kind="stable",
            na_position="last",
        )
        picks = ranked.drop_duplicates([*ARM, "seed"])[[*ARM, "seed", *hparams]]
        arms = _arms(runs, picks, configs, hparams)
        left = runs[~complete].groupby(ARM, dropna=False)["seed"].nunique().rename("incomplete")
        tried = runs[complete].groupby(ARM, dropna=False)["seed"].nunique().rename("_complete")
        arms = arms.merge(left.reset_index(), on=ARM, how="left").merge(
            tried.reset_index(), on=ARM, how="left"
        )
        arms["incomplete"] = arms["incomplete"].fillna(0).astype(int)
        arms["all_diverged"] = (arms["_complete"].fillna(0) - arms["seeds"]).astype(int)
        configs = _with_choices(configs, picks, hparams)
        return Selection(configs=configs, picks=picks, arms=arms.drop(columns="_complete"))


class BestMeanValidation:
    """Per arm, among the configurations with the fewest diverged runs, the one with the best
    mean validation accuracy over its completed seeds, used on every seed. Kept to show what it
    gets wrong: the paired test treats its noisy choice as fixed (see the module docstring)."""

    name = "best mean validation accuracy (fewest diverged)"
    description = (
        "Each arm used, on every seed, the configuration with the best mean validation "
        "accuracy among those with the fewest diverged runs (this treats a noisy choice as "
        "fixed and over-flags; see docs/analysis.md)."
    )

    def select(self, runs: pd.DataFrame, hparams: tuple[str, ...]) -> Selection:
        """One configuration per arm, its completed seeds as the picks."""
        configs = _configs(runs, hparams)
        fewest = configs.groupby(ARM, dropna=False)["n_diverged"].transform("min")
        eligible = configs[configs["n_diverged"].eq(fewest) & configs["val_acc"].notna()]
        best = eligible.sort_values("val_acc", ascending=False, kind="stable").drop_duplicates(ARM)
        done = runs[runs["status"].eq("completed")]
        picks = done.merge(best[ARM + list(hparams)], on=ARM + list(hparams))[
            [*ARM, "seed", *hparams]
        ]
        configs = _with_choices(configs, picks, hparams)
        arms = _arms(runs, picks, configs, hparams)
        arms["incomplete"] = 0
        arms["all_diverged"] = 0
        return Selection(configs=configs, picks=picks, arms=arms)


#: The rule the analysis uses.
DEFAULT_RULE = PerSeedValidation()
#: Rules by the name `transferlab-analyze --selection` takes.
RULES = {"per_seed": PerSeedValidation(), "best_mean": BestMeanValidation()}
