"""Words and values that run settings accept, defined once for the config schema
(`training/config_schema.py`) and for the code that acts on them (`data/build.py`,
`store/identity.py`).

This module imports nothing: the command line's presets and top-level keys are checked against
the schema before torch, timm or Lightning load, so that an unknown preset, a misspelt
top-level key and a finished study launched again end within a second (a value out of range,
or a key of a constructor preset such as `trainer.*`, is checked where those are loaded).
"""

#: Where a file-backed dataset's images wait: decided by size, decoded in memory, or streamed.
DATA_MODES = ("auto", "memory", "stream")
#: Channel counts images can be built with.
CHANNEL_CHOICES = (1, 3)
#: The `image_size` that means the model's pretrained input size (`pretrained_input_size`).
AUTO_IMAGE_SIZE = "auto"
#: Choices of `input_norm`: the model's pretrained statistics, or plain [0, 1] pixels.
INPUT_NORMS = ("model", "unit")
