"""Saving and loading plain (merged) models: safetensors + the ``create_model`` arguments.

Uses ``m2pt.checkpoints.save_model`` / ``load_model`` when that branch provides them; until
then it writes the same layout itself: a ``.safetensors`` file whose metadata key ``"m2pt"``
holds ``{"model_args": ..., "summary": {"num_heads": ...}}`` (what ``load_auxiliary`` reads
as the ``m2pt`` format), plus a readable ``.json`` beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Optional

from torch import nn

from m2pt.io import atomic_write_json, load_tensor_file, read_safetensors_metadata, save_safetensors

METADATA_KEY = "m2pt"


def model_args_of(model: nn.Module) -> dict[str, Any]:
    """The recorded ``create_model`` arguments of an m2pt model."""
    args = getattr(model, "m2pt_model_args", None)
    if not isinstance(args, Mapping):
        raise ValueError(f"{type(model).__name__} has no m2pt_model_args; build it with m2pt.models.create_model")
    return dict(args)


def num_heads_of(model: nn.Module) -> Optional[int]:
    for module in model.modules():
        heads = getattr(module, "num_heads", None)
        if isinstance(heads, int):
            return heads
    return None


def save_plain_model(model: nn.Module, path: str | Path, extra: Optional[Mapping[str, Any]] = None) -> Path:
    """Atomically save a model without pathways (merge first) with its build arguments."""
    from m2pt.pathway import iter_pathway_layers

    if any(True for _ in iter_pathway_layers(model)):
        raise ValueError("save_plain_model got a model with pathways; call m2pt.merge_pathways(model) first")
    path = Path(path)
    info = {"model_args": model_args_of(model), "summary": {"num_heads": num_heads_of(model)}, **(extra or {})}
    save_safetensors(model.state_dict(), path, metadata={METADATA_KEY: json.dumps(info)})
    atomic_write_json(path.with_suffix(".json"), info)
    return path


def read_model_info(path: str | Path) -> dict[str, Any]:
    """The m2pt metadata of a saved model ({} when there is none)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        raw = read_safetensors_metadata(path).get(METADATA_KEY)
        if raw:
            return json.loads(raw)
    sidecar = path.with_suffix(".json")
    return json.loads(sidecar.read_text()) if sidecar.is_file() else {}


def load_plain_model(path: str | Path) -> nn.Module:
    """Rebuild a model saved by :func:`save_plain_model` and load it with ``strict=True``."""
    from m2pt.models import create_model_from_args

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    info = read_model_info(path)
    if "model_args" not in info:
        raise ValueError(f"{path} has no m2pt model arguments; it was not written by m2pt (save_model)")
    model = create_model_from_args(info["model_args"])
    model.load_state_dict(load_tensor_file(path), strict=True)
    return model
