"""Analysis of a study's records: transfer gain per cell against scratch with corrected
significance, learning curves and freeze-depth profiles, domain shift, transferability
estimators, and a report folder (locally and on W&B). Entry point: `analyze`.
"""

from transferlab.analysis.pipeline import AnalysisSettings, analyze, analyze_frame
from transferlab.analysis.records import load_records

__all__ = ["AnalysisSettings", "analyze", "analyze_frame", "load_records"]
