"""Any timm model for a dataset, split into ordered depth stages, frozen by depth, with four inits.

See ``factory`` (names, image size, inits), ``stages`` (stem/blocks/head split, freezing,
running-stat norms), ``weights`` (file/hub/source loading), ``checkpoint`` and ``features``.
"""

from transferlab.models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_checkpoint_model,
    save_checkpoint,
)
from transferlab.models.factory import INIT_CHOICES, check_model_name, create_model, validate_model
from transferlab.models.features import extract_features, to_model_input
from transferlab.models.stages import (
    freeze_stages,
    keep_frozen_in_eval,
    model_stages,
    num_stages,
    trainable_parameter_count,
)

__all__ = [
    "INIT_CHOICES",
    "CheckpointError",
    "check_model_name",
    "create_model",
    "extract_features",
    "freeze_stages",
    "keep_frozen_in_eval",
    "load_checkpoint",
    "load_checkpoint_model",
    "model_stages",
    "num_stages",
    "save_checkpoint",
    "to_model_input",
    "trainable_parameter_count",
    "validate_model",
]
