"""Checkpoint readers (every layout of ``shared/CHECKPOINTS.md``), target loading and export."""

from .auxiliary import AuxiliaryModel, load_auxiliary
from .builtin import BUILTIN_CHECKPOINTS, builtin_checkpoint_path
from .formats import FORMATS, CheckpointError, ConvertedCheckpoint, convert_checkpoint

__all__ = [
    "AuxiliaryModel", "load_auxiliary",
    "BUILTIN_CHECKPOINTS", "builtin_checkpoint_path",
    "FORMATS", "CheckpointError", "ConvertedCheckpoint", "convert_checkpoint",
]
