"""How the analysis judges cells and what it computes: `AnalysisSettings`, in a module of its
own so that reading a recipe's settings does not load the analysis' heavy dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from transferlab.analysis import curves as cv
from transferlab.analysis.methods import MARGIN
from transferlab.analysis.paired import DEFAULT_TEST, TESTS
from transferlab.analysis.selection import RULES
from transferlab.analysis.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE, CORRECTIONS
from transferlab.errors import ConfigError, choice_error

DEFAULT_ALPHA = 0.05
#: Fewest examples per dataset for distances (the unbiased MMD and the PCA need a few).
MIN_EXAMPLES = 4
#: Examples per dataset used for distances and estimators (both sides get the same number).
DEFAULT_MAX_EXAMPLES = 500


@dataclass(frozen=True)
class AnalysisSettings:
    """How the analysis judges cells and what it computes (the report lists every value)."""

    correction: str = "bh"  # multiple-comparison control across a study's cells: bh | holm
    alpha: float = DEFAULT_ALPHA  # significance level after correction
    test: str = DEFAULT_TEST  # paired test per cell: t | wilcoxon | signflip (analysis.paired)
    selection: str = "per_seed"  # how runs are chosen on validation (analysis.selection.RULES)
    margin: float = MARGIN  # a method's "no negative transfer" needs its interval above -margin
    confidence: float = CONFIDENCE  # level of every interval
    n_resamples: int = BOOTSTRAP_RESAMPLES  # bootstrap resamples of the summary intervals
    convergence_fraction: float = cv.CONVERGENCE_FRACTION  # share of scratch's final val acc
    seed: int = 0  # seed of bootstraps and of the examples sampled for distances
    shift: bool = True  # domain distances and transferability estimators (the slow part)
    figures: bool = True  # PNG figures in the report folder
    max_examples: int = DEFAULT_MAX_EXAMPLES  # examples per dataset for distances

    def check(self) -> None:
        """Raise ConfigError (one line) for a bad correction, alpha, test or sample size."""
        if self.correction not in CORRECTIONS:
            raise choice_error("correction", self.correction, CORRECTIONS)
        if self.test not in TESTS:
            raise choice_error("test", self.test, TESTS)
        if self.selection not in RULES:
            raise choice_error("selection", self.selection, tuple(RULES))
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"alpha must lie strictly between 0 and 1, got {self.alpha!r}")
        if not 0.0 <= self.margin < 1.0:
            raise ConfigError(f"margin must lie in [0, 1), got {self.margin!r}")
        if self.max_examples < MIN_EXAMPLES:
            raise ConfigError(
                f"max_examples must be at least {MIN_EXAMPLES}, got {self.max_examples!r}"
            )
