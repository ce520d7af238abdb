"""m2pt: Multimodal Pathway (CVPR 2024) as a library.

Improve a transformer of one modality with the weights of a transformer trained on another
modality, through cross-modal re-parameterization, at zero inference cost::

    model = m2pt.add_pathways(target, aux)     # every block linear becomes W + λ W'
    ...                                        # train as any nn.Module
    plain = m2pt.merge_pathways(model)         # the original architecture again
"""

import os as _os
import sys as _sys
from importlib import metadata as _metadata

if "torch" not in _sys.modules:
    # OpenMP threads that spin while waiting steal the CPU from the threads doing the work
    # whenever another process is busy too: on a shared 2-core machine, small-model training
    # steps ran 10-15x slower (benchmarks in the README). Passive waiting avoids that. Set
    # OMP_WAIT_POLICY yourself (or import torch first) to keep another policy.
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .pathway import (
    PathwayConfig,
    PathwayError,
    PathwaySummary,
    add_pathways,
    has_pathways,
    load_pathways,
    merge_pathways,
    param_groups,
    pathway_scales,
    pathway_summary,
    prepare_peft_model,
    save_pathways,
)

from .checkpoints import (
    AuxiliaryModel,
    LoadReport,
    builtin_checkpoint_path,
    load_auxiliary,
    load_model,
    load_target_weights,
    save_model,
)

from .models import FbankTransform, SpecAugment, compute_fbank_stats, create_model, create_model_from_args
from .train import RECIPES, TrainConfig, finetune, recipe
from .train.mae import pretrain

try:
    __version__ = _metadata.version("m2pt")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "RECIPES", "TrainConfig", "finetune", "pretrain", "recipe",
    "FbankTransform", "SpecAugment", "compute_fbank_stats", "create_model", "create_model_from_args",
    "AuxiliaryModel", "LoadReport", "builtin_checkpoint_path", "load_auxiliary", "load_model",
    "load_target_weights", "save_model",
    "PathwayConfig", "PathwayError", "PathwaySummary", "add_pathways", "has_pathways", "load_pathways",
    "merge_pathways", "param_groups", "pathway_scales", "pathway_summary", "prepare_peft_model", "save_pathways",
]
