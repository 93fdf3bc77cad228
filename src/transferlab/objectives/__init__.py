"""Source-stage objectives, the `pretrain/objective` config group: what a source is pre-trained
to do. `supervised` (its labels; the default) or an objective that never reads them:
`denoising` (a decoder reconstructs the clean image from a corrupted one), `rotation`
(a head predicts which of four rotations an image was given) and `simclr` (two views of each
image pulled together through a projection head). Each is a small class with the
same API (`base.Objective`); whatever it adds to the model (a decoder, a head) trains with the
body and never transfers: the target stage gets the body and a new classifier.
"""

from transferlab.objectives.base import Objective, Supervised, is_supervised, objective_label
from transferlab.objectives.contrastive import SimCLR
from transferlab.objectives.pretext import Denoising, Rotation

__all__ = [
    "Denoising",
    "Objective",
    "Rotation",
    "SimCLR",
    "Supervised",
    "is_supervised",
    "objective_label",
]
