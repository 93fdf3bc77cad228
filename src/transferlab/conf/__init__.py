"""The default configs, shipped with the package (Hydra finds them as `transferlab.conf`)."""
