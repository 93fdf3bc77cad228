"""The cells a recipe's grid will produce, known before any training, so that a claim naming a
cell the study cannot have is refused before the sweep starts.

Each swept value is composed once (against the first value of every other axis), and each job's
record fields known before training go through the analysis' own record flattening: the
columns and values a claim may name are exactly those the analysis will print.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.analysis.keys import EVALUATED, SCRATCH
from transferlab.errors import ConfigError
from transferlab.presets import is_searchpath, searchpath_entries, searchpath_override
from transferlab.reproduce.claims import Claim

#: Placeholder run id of a previewed record (the preview never writes anything).
PREVIEW_ID = "preview"


def _axes(base: Any, overrides: Sequence[str]) -> list[list[str]]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (base.hydra.sweeper.params or {}).items()]
    axes: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides([*params, *overrides]):
        key = override.get_key_element()
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else []
        # A key given again replaces the earlier axis, as it does in the sweep.
        axes[key] = [f"{key}={v}" for v in values or [override.get_value_element_as_str()]]
    return list(axes.values())


def preview_jobs(overrides: Sequence[str], master: Any) -> list[list[str]]:
    """The first value of every axis, then each other swept value against the first values
    of the other axes (one job per value, not the grid's product)."""
    axes = _axes(master, overrides)
    first = [axis[0] for axis in axes]
    others = [
        [*first[:i], value, *first[i + 1 :]] for i, axis in enumerate(axes) for value in axis[1:]
    ]
    return [first, *others]


def with_config_dir(overrides: Sequence[str], config_dir: Path | None) -> list[str]:
    """`overrides` with the recipe's `config_dir` on Hydra's search path, then the folders the
    user's own `hydra.searchpath=[...]` names, as one override (`searchpath_override`): a
    user's folder (a cluster's launcher preset) given after the recipe's would be ignored, and
    one given before it would hide the recipe's experiment."""
    own = [f"file://{config_dir}"] if config_dir else []
    searchpath = searchpath_override([*own, *searchpath_entries(overrides)])
    return [*searchpath, *(o for o in overrides if not is_searchpath(o))]


def _row(cfg: Any) -> dict[str, Any]:
    from transferlab.analysis.records import flatten_record
    from transferlab.store import RunRecord, stage_configs
    from transferlab.training.record import base_fields

    fields = base_fields(stage_configs(cfg)[1], PREVIEW_ID)
    return flatten_record(asdict(RunRecord(**fields, status="failed", error=PREVIEW_ID)))


def preview_cells(
    overrides: Sequence[str], config_dir: Path | None, evaluated_on: Sequence[str] = ()
) -> pd.DataFrame:
    """The analysis columns of the grid's previewed jobs (one row per job), composed as the
    sweeper composes them (`sweep.plan.JobComposer`: jobs choosing the same presets share one
    composition); with a copy of every row per dataset the runs will be tested on after
    training (`transferlab-eval --on`, by description), named as the analysis names them."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import transferlab.cli.run  # noqa: F401 - registers the config resolvers
    from transferlab.analysis.cells import target_runs
    from transferlab.analysis.records import records_frame
    from transferlab.presets import CONF_DIR
    from transferlab.sweep.plan import JobComposer

    searched = with_config_dir(overrides, config_dir)
    searchpath = [o for o in searched if is_searchpath(o)]
    grid = [o for o in searched if not is_searchpath(o)]
    plain = [o for o in grid if "," not in o.split("=", 1)[-1] and "range(" not in o]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        master = compose("config", [*searchpath, *plain], return_hydra_config=True)
        composer = JobComposer(GlobalHydra.instance().config_loader(), master)
        rows = [_row(composer.compose(job)) for job in preview_jobs(grid, master)]
    rows += [
        {**row, "target": EVALUATED.format(target=row["target"], evaluated_on=on)}
        for on in evaluated_on
        for row in rows
    ]
    return target_runs(records_frame(rows))  # with the arm labels (source_variant, ...)


def _known(values: pd.Series) -> list[str]:
    return sorted({str(v) for v in values.dropna().unique()})


def check_cells(claims: Sequence[Claim], cells: pd.DataFrame) -> None:
    """A one-line ConfigError for the first claim that names a value its columns will not
    hold (columns the preview lacks, such as a drift table's, are checked when the claim is)."""
    for claim in claims:
        if claim.test == "paired" and claim.b == SCRATCH and not cells["source"].eq(SCRATCH).any():
            raise ConfigError(f"claim {claim.id!r}: the study has no scratch runs")
        for where in claim.selections():
            _check_where(claim.id, where, cells)


def _check_where(claim_id: str, where: Mapping[str, Any], cells: pd.DataFrame) -> None:
    from transferlab.reproduce.verdicts import matching

    for column, value in where.items():
        if column not in cells.columns:
            continue
        if not matching(cells, {column: value}).any():
            known = ", ".join(_known(cells[column]))
            raise ConfigError(
                f"claim {claim_id!r} names {column}={value!r}, which the study's grid does "
                f"not have; its values: {known}"
            )
