"""Console scripts: `transferlab-run` (the Hydra app), `transferlab-analyze`, `transferlab-eval`
and `transferlab-export`."""
