"""Model selection rules as small named objects (as DomainBed's model_selection.py): which
configuration of the swept optimisation settings stands for an arm. Test accuracy never plays
a part. The rule's name is printed next to every selected value (cells.csv, report.md).
"""

from __future__ import annotations

import pandas as pd

from transferlab.analysis.keys import ARM


class BestMeanValidation:
    """Per arm, among the configurations with the fewest diverged runs, the one with the best
    mean validation accuracy over its completed seeds; so a learning rate that diverged on some
    seeds cannot win on the survivors (failed runs, an infrastructure matter, do not count)."""

    name = "best mean validation accuracy (fewest diverged)"

    def select(self, runs: pd.DataFrame, hparams: tuple[str, ...]) -> pd.DataFrame:
        """Every configuration of every arm with its mean validation accuracy over completed
        seeds, its completed and diverged counts, and `chosen` (the one selected per arm)."""
        keys = ARM + list(hparams)
        done = runs["status"].eq("completed")
        runs = runs.assign(
            _val=runs["val_acc"].where(done),
            _seed=runs["seed"].where(done),
            _diverged=runs["status"].eq("diverged"),
        )
        table = (
            runs.groupby(keys, dropna=False, sort=True)
            .agg(
                val_acc=("_val", "mean"),
                n_seeds=("_seed", "nunique"),
                n_diverged=("_diverged", "sum"),
            )
            .reset_index()
        )
        table["chosen"] = False
        if table.empty:
            return table
        fewest = table.groupby(ARM, dropna=False)["n_diverged"].transform("min")
        eligible = table[table["n_diverged"].eq(fewest) & table["val_acc"].notna()]
        best = eligible.sort_values("val_acc", ascending=False, kind="stable").drop_duplicates(ARM)
        table.loc[best.index, "chosen"] = True
        table["edge"] = grid_edges(table, hparams).where(table["chosen"], "")
        return table


def grid_edges(table: pd.DataFrame, hparams: tuple[str, ...]) -> pd.Series:
    """Per configuration, the swept settings at the smallest or largest value its arm tried
    (e.g. "lr at the top of the grid"): a choice at an edge says the optimum may lie outside
    the grid, so the comparison may be unfair to that arm. Empty when interior or not swept."""
    marks = pd.Series("", index=table.index)
    for h in hparams:
        values = table.groupby(ARM, dropna=False)[h]
        swept = values.transform("nunique") > 1
        for side, bound in (("top", values.transform("max")), ("bottom", values.transform("min"))):
            at = swept & table[h].eq(bound)
            marks = marks.where(~at, marks + f"{h} at the {side} of the grid; ")
    return marks.str.rstrip("; ")


#: The rule the analysis uses.
DEFAULT_RULE = BestMeanValidation()
