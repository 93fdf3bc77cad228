"""Each epoch's random numbers drawn from (seed, epoch) alone, so that a resumed run trains every
epoch after its checkpoint exactly as the uninterrupted run does.

An epoch draws random numbers from three generators, each seeded at the start of the epoch from
(run seed, epoch, stream) and never carried over from the epoch before:

- `Stream.ORDER`: the order of its training batches (`loaders.EpochSampler`);
- `Stream.GLOBAL`: torch's global generator, CPU and CUDA (dropout, drop-path and whatever else
  the model draws in training mode; `TransferClassifier.on_train_epoch_start`);
- `Stream.AUGMENT`: the augmentation's own generator (`TransferClassifier._augment_generator`).

Why derive the states rather than save the generators' states in the resume checkpoint and
restore them: a derived state depends on nothing that ran before the epoch, so it cannot be
captured at the wrong moment or forgotten. A resumed process draws other numbers before its
first epoch than the uninterrupted one did at that point (weight initialisation, the frozen
prefix's probe, Lightning's own draws); with saved states, every draw between the save and the
next epoch would have to match too, and each new source of randomness would need its own saved
state. Resume checkpoints are written at epoch ends only (`callbacks.ResumeCheckpoint`), so no
run resumes mid-epoch, where a per-epoch state would not suffice.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """The independent random streams of one epoch."""

    ORDER = 0
    GLOBAL = 1
    AUGMENT = 2


def epoch_seed(seed: int, epoch: int, stream: Stream) -> int:
    """A 64-bit seed for `stream` in `epoch` of a run seeded `seed` (>= 0), mixed by numpy's
    SeedSequence: nearby seeds and epochs give unrelated streams, and the streams of one epoch
    share no numbers."""
    state = np.random.SeedSequence([seed, epoch, int(stream)]).generate_state(1, dtype=np.uint64)
    return int(state[0])
