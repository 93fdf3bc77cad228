"""Reproduction recipes: one folder per paper under `experiments/` (shipped inside the wheel as
`transferlab/experiments`), each with `claims.yaml` (the paper, the study and its scales, the
claims), the study's Hydra config (`experiment/<recipe>.yaml`, unless it reuses a study of
`conf/experiment`), a README and the figures of its last full run.

claims.yaml:

    cite: "Authors et al. Year"
    paper: "Authors, Title, Venue Year"
    question: "what the miniature asks"
    experiment: yosinski2014          # the study config (default: the recipe's name)
    scales:                           # overrides added to the study's grid, per scale
      smoke: ["hydra.sweeper.params.seed=0,1", "train.epochs=1"]
      full: []
    launches: [["pretrain/objective=simclr", "data@source=digits"]]  # more sweeps into the
                                      # study: each adds its overrides to the grid's
    evaluate: ["--on", "digits_rot45"]  # transferlab-eval STUDY <these> after the sweeps
    analysis: {shift: false}          # transferlab.analysis.AnalysisSettings fields
    claims: [...]                     # transferlab.reproduce.claims
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from transferlab.errors import ConfigError, choice_error
from transferlab.reproduce.claims import Claim, parse_claims

#: Where the recipes are: the repository's experiments/, linked into the package.
EXPERIMENTS_DIR = Path(str(files("transferlab") / "experiments")).resolve()
CLAIMS_FILE = "claims.yaml"
#: The scales a recipe runs at.
SCALES = ("smoke", "full")
KEYS = (
    "cite",
    "paper",
    "question",
    "experiment",
    "evaluate",
    "launches",
    "scales",
    "analysis",
    "claims",
)


@dataclass(frozen=True)
class Recipe:
    """A paper's miniature: the study to run, at which scale, and the claims to check."""

    name: str
    folder: Path
    cite: str  # short: "Yosinski et al. 2014"
    paper: str
    question: str
    experiment: str
    scales: Mapping[str, list[str]]
    analysis: Mapping[str, Any] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    evaluate: list[str] = field(default_factory=list)  # transferlab-eval STUDY <evaluate>
    launches: list[list[str]] = field(default_factory=list)  # further sweeps' own overrides

    @property
    def config_dir(self) -> Path | None:
        """The folder holding the recipe's own `experiment/` config group (None: conf's)."""
        own = self.folder / "experiment" / f"{self.experiment}.yaml"
        return self.folder if own.is_file() else None


def recipe_names() -> list[str]:
    """Every recipe shipped, sorted."""
    if not EXPERIMENTS_DIR.is_dir():
        return []
    return sorted(p.parent.name for p in EXPERIMENTS_DIR.glob(f"*/{CLAIMS_FILE}"))


def _scales(raw: Any, name: str) -> dict[str, list[str]]:
    raw = raw or {}
    if not isinstance(raw, Mapping) or set(raw) - set(SCALES):
        raise ConfigError(f"recipe {name!r}: scales must map {', '.join(SCALES)} to overrides")
    return {s: [str(o) for o in raw.get(s) or []] for s in SCALES}


def _analysis(raw: Any, name: str) -> dict[str, Any]:
    from transferlab.analysis.settings import AnalysisSettings

    raw = dict(raw or {})
    known = [f.name for f in fields(AnalysisSettings)]
    for key in raw:
        if key not in known:
            raise choice_error(f"analysis setting of recipe {name!r}", key, known)
    return raw


def load_recipe(name: str) -> Recipe:
    """The shipped recipe `name`, its claims parsed and checked; one-line ConfigErrors."""
    names = recipe_names()
    if name not in names:
        raise choice_error("recipe", name, names)
    return read_recipe(EXPERIMENTS_DIR / name)


def read_recipe(folder: Path) -> Recipe:
    """The recipe in `folder` (its name is the folder's); one-line ConfigErrors."""
    name = folder.name
    try:
        raw = yaml.safe_load((folder / CLAIMS_FILE).read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
        raise ConfigError(f"{name}/{CLAIMS_FILE} is not valid YAML (line {line})") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}/{CLAIMS_FILE} must be a mapping")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise choice_error(f"key of {name}/{CLAIMS_FILE}", unknown[0], KEYS)
    evaluate = raw.get("evaluate") or []
    if not isinstance(evaluate, list):
        raise ConfigError(
            f"{name}/{CLAIMS_FILE}: evaluate must be a list of transferlab-eval arguments"
        )
    launches = raw.get("launches") or []
    if not isinstance(launches, list) or not all(isinstance(x, list) for x in launches):
        raise ConfigError(f"{name}/{CLAIMS_FILE}: launches must be a list of override lists")
    try:
        claims = parse_claims(raw.get("claims"))
    except ConfigError as exc:
        raise ConfigError(f"{name}/{CLAIMS_FILE}: {exc}") from None
    return Recipe(
        name=name,
        folder=folder,
        cite=str(raw.get("cite") or raw.get("paper", "")),
        paper=str(raw.get("paper", "")),
        question=str(raw.get("question", "")),
        experiment=str(raw.get("experiment") or name),
        scales=_scales(raw.get("scales"), name),
        analysis=_analysis(raw.get("analysis"), name),
        claims=claims,
        evaluate=[str(a) for a in evaluate],
        launches=[[str(o) for o in launch] for launch in launches],
    )
