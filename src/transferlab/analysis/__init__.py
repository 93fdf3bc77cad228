"""Analysis of a study's records: transfer gain per cell against scratch with corrected
significance, learning curves and freeze-depth profiles, domain shift, transferability
estimators, and a report folder (locally and on W&B). Entry point: `analyze`.

The entry points are imported on first use, so that a light submodule (`keys`, `stats`) does
not pull in the pipeline's heavy dependencies (torch, POT) with it.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AnalysisSettings": "transferlab.analysis.settings",
    "analyze": "transferlab.analysis.pipeline",
    "analyze_frame": "transferlab.analysis.pipeline",
    "load_records": "transferlab.analysis.records",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
