"""m2pt: Multimodal Pathway (CVPR 2024) as a library.

Improve a transformer of one modality with the weights of a transformer trained on another
modality, through cross-modal re-parameterization, at zero inference cost::

    model = m2pt.add_pathways(target, aux)     # every block linear becomes W + λ W'
    ...                                        # train as any nn.Module
    plain = m2pt.merge_pathways(model)         # the original architecture again

Importing m2pt changes nothing in the process (no environment variables, threads or signal
handlers) and imports torch only when a name below is first used, so that entry points (the
``m2pt`` command) can set process-wide options, such as ``OMP_WAIT_POLICY``, before torch loads.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import Any

try:
    __version__ = _metadata.version("m2pt")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("RECIPES", "TrainConfig", "finetune", "recipe"), ".train"),
    "pretrain": ".train.mae",
    **dict.fromkeys(("FbankTransform", "SpecAugment", "compute_fbank_stats", "create_model",
                     "create_model_from_args"), ".models"),
    **dict.fromkeys(("AuxiliaryModel", "LoadReport", "builtin_checkpoint_path", "load_auxiliary", "load_model",
                     "load_target_weights", "save_model"), ".checkpoints"),
    **dict.fromkeys(("PathwayConfig", "PathwayError", "PathwaySummary", "add_pathways", "has_pathways",
                     "load_pathways", "merge_pathways", "param_groups", "pathway_scales", "pathway_summary",
                     "prepare_peft_model", "save_pathways"), ".pathway"),
}
_SUBPACKAGES = ("checkpoints", "data", "experiments", "io", "models", "pathway", "train")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'm2pt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBPACKAGES))
