"""Studies as Hydra multirun sweeps: grid size, per-job progress, the end-of-sweep summary."""

from transferlab.sweep.progress import SweepProgress, grid_size

__all__ = ["SweepProgress", "grid_size"]
