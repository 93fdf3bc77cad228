"""transferlab: when does pre-training on a source domain help a target task?"""

__version__ = "0.1.0"
