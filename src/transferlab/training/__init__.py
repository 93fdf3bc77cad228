"""Training: checks, the LightningModule, one stage's fit, a stage's record and a whole run.

Entry point: `transferlab.training.run.train`.
"""
