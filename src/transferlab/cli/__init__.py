"""Console scripts: `transferlab-run` (the Hydra app) and `transferlab-analyze`."""
