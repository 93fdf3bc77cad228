"""Any timm model for a dataset, split into ordered depth groups, frozen by depth, with four inits.

See ``factory`` (names, image size, inits), ``depth`` (stem/blocks/head groups, freezing,
running-stat norms), ``weights`` (file/hub/source loading), ``checkpoint`` and ``features``.
"""

from transferlab.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from transferlab.models.depth import (
    depth_groups,
    freeze_groups,
    keep_frozen_in_eval,
    num_depth_groups,
    trainable_parameters,
)
from transferlab.models.factory import (
    INIT_CHOICES,
    check_model_name,
    create_model,
    load_checkpoint_model,
    validate_model,
)
from transferlab.models.features import extract_features

__all__ = [
    "INIT_CHOICES",
    "CheckpointError",
    "check_model_name",
    "create_model",
    "extract_features",
    "freeze_groups",
    "keep_frozen_in_eval",
    "load_checkpoint",
    "load_checkpoint_model",
    "depth_groups",
    "num_depth_groups",
    "save_checkpoint",
    "trainable_parameters",
    "validate_model",
]
