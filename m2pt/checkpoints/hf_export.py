"""Export of Hugging Face ``transformers`` models in their own format (``save_pretrained``).

A merged Hugging Face model is written by its own ``save_pretrained`` (``config.json`` +
``model.safetensors``), so ``AutoModel*.from_pretrained(folder)`` and the Hub load it without
m2pt. m2pt adds ``m2pt.json`` (what the model is and how it was trained), which
:func:`m2pt.load_model` reads to pick the model class.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from ..io import PathLike, atomic_write_json
from .formats import CheckpointError

M2PT_HF_CONFIG = "m2pt.json"


def is_transformers_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``transformers.PreTrainedModel`` (without importing transformers)."""
    transformers = sys.modules.get("transformers")
    return transformers is not None and isinstance(model, transformers.PreTrainedModel)


def save_pretrained_export(model: nn.Module, path: PathLike, document: Mapping[str, Any]) -> Path:
    """Write ``model`` with ``save_pretrained`` into the folder ``path``, plus ``m2pt.json``.

    The folder is written completely or not at all: files go to a temporary folder beside it
    first and are moved in at the end.

    Args:
        model: A plain (merged) ``transformers.PreTrainedModel``.
        path: The output folder (created if needed).
        document: m2pt's description of the model (stored as ``m2pt.json``).

    Returns:
        The path of the weights file.

    Raises:
        CheckpointError: ``path`` names a file rather than a folder.
    """
    path = Path(path)
    if path.suffix or path.is_file():
        raise CheckpointError(
            f"{type(model).__name__} is a Hugging Face model: it is exported as a folder with save_pretrained "
            f"(config.json + model.safetensors). Pass a folder instead of {path}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        atomic_write_json(staging / M2PT_HF_CONFIG, {
            **document, "builder": "transformers", "transformers_class": type(model).__name__})
        path.mkdir(exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, path / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    weights = sorted(path.glob("model*.safetensors"))
    return weights[0] if len(weights) == 1 else path


def load_pretrained_export(path: PathLike) -> nn.Module:
    """Load a folder written by :func:`save_pretrained_export` with its ``transformers`` class.

    Raises:
        ImportError: transformers is not installed (``pip install m2pt[hf]``).
        CheckpointError: the recorded class is not in transformers.
    """
    path = Path(path)
    document = json.loads((path / M2PT_HF_CONFIG).read_text())
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(f"{path} holds a Hugging Face model; install transformers (pip install 'm2pt[hf]').") from exc
    cls = getattr(transformers, str(document.get("transformers_class")), None)
    if cls is None:
        raise CheckpointError(
            f"{path / M2PT_HF_CONFIG} names the class {document.get('transformers_class')!r}, which transformers "
            f"{transformers.__version__} does not have.")
    return cls.from_pretrained(path)
