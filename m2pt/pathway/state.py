"""Saving and loading an unmerged pathway model, to resume training without the auxiliary file.

The file is a ``.safetensors`` holding the model's whole state (target weights, every ``W'``
and every λ) and, in its header, which layers carry pathways and how they were configured.
:func:`load_pathways` rebuilds the pathways on a freshly built target from that file alone.
"""

from __future__ import annotations

import json
from typing import Any

from torch import nn

from ..io import PathLike, load_tensor_file, read_safetensors_metadata, save_safetensors
from .attach import unwrap_model
from .config import PathwayConfig
from .errors import PathwayError
from .hf_target import guard_save_pretrained
from .layer import Pathway
from .module import attach_pathway, has_pathways, iter_pathway_layers, pathways_of

FORMAT_KEY = "m2pt_format"
FORMAT_VALUE = "pathway-model/1"


def _layer_records(model: nn.Module) -> list[dict[str, Any]]:
    records = []
    for name, module in iter_pathway_layers(model):
        chains = pathways_of(module)
        for position, pathway in enumerate(chains["weight"]):
            assert isinstance(pathway, Pathway)
            has_bias = "bias" in chains and position < len(chains["bias"])
            records.append({
                "module": name,
                "position": position,
                "aux_name": pathway.aux_name,
                "aux_index": pathway.aux_index,
                "per_channel": pathway.per_channel,
                "train_scale": pathway.scale.requires_grad,
                "train_aux": pathway.aux_weight.requires_grad,
                "train_target": module.parametrizations["weight"].original.requires_grad,
                "aux_bias": has_bias,
            })
    return records


def save_pathways(model: nn.Module, path: PathLike) -> None:
    """Write an unmerged pathway model (target, ``W'`` and λ) to a ``.safetensors`` file.

    The write is atomic: an interrupted save leaves any previous file intact. For models built
    by ``m2pt.create_model`` the build arguments are stored too, so that
    :func:`pathway_file_model_args` can rebuild the target.

    Raises:
        PathwayError: the model has no pathways (save it with :func:`m2pt.save_model`).
    """
    model = unwrap_model(model)
    records = _layer_records(model)
    if not records:
        raise PathwayError("save_pathways: the model has no pathways; save a plain model with m2pt.save_model.")
    config = getattr(model, "pathway_config", None)
    metadata = {
        FORMAT_KEY: FORMAT_VALUE,
        "layers": json.dumps(records),
        "config": config.to_json() if isinstance(config, PathwayConfig) else "{}",
    }
    model_args = getattr(model, "m2pt_model_args", None)
    if model_args is not None:
        metadata["model_args"] = json.dumps(model_args, sort_keys=True)
    save_safetensors(model.state_dict(), path, metadata=metadata)


def pathway_file_model_args(path: PathLike) -> dict[str, Any] | None:
    """The ``m2pt.create_model`` arguments stored by :func:`save_pathways` (None if absent)."""
    raw = read_safetensors_metadata(path).get("model_args")
    return json.loads(raw) if raw else None


def load_pathways(target: nn.Module, path: PathLike, strict: bool = True) -> nn.Module:
    """Rebuild the pathways saved by :func:`save_pathways` on ``target`` and load every tensor.

    Args:
        target: A freshly built model of the saved architecture, without pathways.
        path: A file written by :func:`save_pathways`.
        strict: Passed to ``load_state_dict`` (keep True: every tensor must match).

    Returns:
        ``target`` with pathways, in the saved state.

    Raises:
        PathwayError: the file is not a pathway-model file, or names modules that the target
            does not have.
    """
    metadata = read_safetensors_metadata(path) if str(path).endswith(".safetensors") else {}
    if metadata.get(FORMAT_KEY) != FORMAT_VALUE:
        raise PathwayError(
            f"{path} is not a pathway-model file written by m2pt.save_pathways (its header has "
            f"{FORMAT_KEY}={metadata.get(FORMAT_KEY)!r}). For a merged or plain model use m2pt.load_model.")
    if has_pathways(target):
        raise PathwayError("load_pathways needs a target without pathways; build a fresh model and pass it.")
    state = load_tensor_file(path)
    modules = dict(target.named_modules())
    for record in json.loads(metadata["layers"]):
        name, position = record["module"], record["position"]
        if name not in modules:
            raise PathwayError(
                f"{path} has a pathway at {name!r}, which {type(target).__name__} does not have; build the "
                "target with the same architecture as the saved model.")
        prefix = f"{name}.parametrizations"
        aux_bias = state.get(f"{prefix}.bias.{position}.aux_bias") if record["aux_bias"] else None
        attach_pathway(
            modules[name], state[f"{prefix}.weight.{position}.aux_weight"], aux_bias,
            per_channel=record["per_channel"], train_scale=record["train_scale"], train_aux=record["train_aux"],
            train_target=record["train_target"], aux_name=record["aux_name"], aux_index=record["aux_index"],
        )
    target.load_state_dict(state, strict=strict)
    config = json.loads(metadata.get("config", "{}"))
    if config:
        target.pathway_config = PathwayConfig.from_dict(config)
        if target.pathway_config.split_under_autocast:
            for _, layer in iter_pathway_layers(target):
                layer.split_under_autocast = True
    guard_save_pretrained(target)
    return target
