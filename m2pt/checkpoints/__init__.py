"""Checkpoint readers (every layout of ``shared/CHECKPOINTS.md``), target loading and export."""

from .auxiliary import AuxiliaryModel, load_auxiliary
from .builtin import BUILTIN_CHECKPOINTS, builtin_checkpoint_path
from .formats import FORMATS, CheckpointError, ConvertedCheckpoint, convert_checkpoint, is_pathway_key
from .export import load_model, read_export_config, save_model
from .onnx import OnnxExport, export_onnx
from .target import LoadReport, ShapeChange, load_target_weights

__all__ = [
    "AuxiliaryModel", "load_auxiliary",
    "BUILTIN_CHECKPOINTS", "builtin_checkpoint_path",
    "FORMATS", "CheckpointError", "ConvertedCheckpoint", "convert_checkpoint", "is_pathway_key",
    "LoadReport", "ShapeChange", "load_target_weights",
    "save_model", "load_model", "read_export_config", "OnnxExport", "export_onnx",
]
