"""Optimizer parameter groups for models with pathways.

Weight decay applies to weight matrices (``W`` and ``W'``) only: never to λ, biases, norms,
or names the model lists in ``no_weight_decay()``. With layer-wise learning-rate decay, ``W'``
and λ belong to the group of their block, as the target weight they are added to.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Optional

from torch import nn

from .attach import unwrap_model
from .config import DEFAULT_BLOCK_PATTERN, PathwayConfig
from .layer import BiasPathway, Pathway


def pathway_scale_ids(model: nn.Module) -> set[int]:
    """``id`` of every λ parameter in ``model``."""
    return {id(m.scale) for m in model.modules() if isinstance(m, Pathway)}


def _layer_ids(model: nn.Module, names: list[str], block_pattern: str) -> tuple[dict[str, int], int]:
    """Layer index per parameter name: 0 = embeddings, 1..depth = blocks, depth+1 = the rest."""
    if hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        layer_map = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
        return {n: layer_map.get(n, max(layer_map.values())) for n in names}, max(layer_map.values()) + 1
    blocks = {n: int(m.group(1)) for n in names if (m := re.search(block_pattern, n))}
    depth = max(blocks.values()) + 1 if blocks else 0
    stem = re.compile(r"^(cls_token|cls_pos|pos_embed|patch_embed|mask_token|reg_token|encoder\.|embed)")
    ids = {n: blocks[n] + 1 if n in blocks else (0 if stem.match(n) else depth + 1) for n in names}
    return ids, depth + 2


def param_groups(
    model: nn.Module,
    weight_decay: float = 0.05,
    layer_decay: Optional[float] = None,
    scale_lr_mult: Optional[float] = None,
    no_weight_decay: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Parameter groups for ``torch.optim`` (e.g. AdamW) with the paper's conventions.

    Each group carries ``lr_scale`` (layer decay × λ multiplier); multiply the base learning
    rate by it (m2pt's trainer and timm's schedulers do).

    Args:
        model: A model with or without pathways (a DDP wrapper is unwrapped).
        weight_decay: Decay for weight matrices (``W`` and ``W'``).
        layer_decay: Layer-wise lr decay factor (0.65–0.75 in the paper's recipes); None
            disables it. Block ``i`` of ``depth`` gets ``layer_decay ** (depth + 1 - (i + 1))``.
        scale_lr_mult: Learning-rate multiplier for λ; defaults to the model's
            ``PathwayConfig.scale_lr_mult`` (1.0 = paper).
        no_weight_decay: Extra parameter names (or name prefixes) without weight decay, added
            to the model's own ``no_weight_decay()``.

    Returns:
        Groups with keys ``params``, ``weight_decay``, ``lr_scale`` and ``name``; only
        parameters with ``requires_grad`` are included.
    """
    model = unwrap_model(model)
    config = getattr(model, "pathway_config", None)
    if scale_lr_mult is None:
        scale_lr_mult = config.scale_lr_mult if isinstance(config, PathwayConfig) else 1.0
    skip = set(no_weight_decay)
    if hasattr(model, "no_weight_decay"):
        skip |= set(model.no_weight_decay())
    scale_ids = pathway_scale_ids(model)
    bias_ids = {id(m.aux_bias) for m in model.modules() if isinstance(m, BiasPathway)}
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    pattern = config.block_pattern if isinstance(config, PathwayConfig) else DEFAULT_BLOCK_PATTERN
    layer_ids, num_layers = _layer_ids(model, [n for n, _ in named], pattern)

    groups: dict[tuple[int, str], dict[str, Any]] = {}
    for name, param in named:
        is_scale = id(param) in scale_ids
        no_decay = (is_scale or id(param) in bias_ids or param.ndim <= 1 or name.endswith(".bias")
                    or name.endswith(".bias.original") or any(name == s or name.startswith(s + ".") for s in skip))
        kind = "scale" if is_scale else ("no_decay" if no_decay else "decay")
        layer = layer_ids[name]
        key = (layer, kind)
        if key not in groups:
            lr_scale = layer_decay ** (num_layers - 1 - layer) if layer_decay is not None else 1.0
            groups[key] = {
                "name": f"layer{layer}_{kind}",
                "params": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": lr_scale * (scale_lr_mult if is_scale else 1.0),
            }
        groups[key]["params"].append(param)
    return [groups[k] for k in sorted(groups)]
