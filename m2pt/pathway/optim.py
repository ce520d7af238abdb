"""Optimizer parameter groups for models with pathways, usable by every training tool.

Weight decay applies to weight matrices (``W`` and ``W'``) only: never to λ (scalar or per
channel), biases, norms, class/mask tokens, position embeddings, or names the model lists in
``no_weight_decay()``. With layer-wise learning-rate decay, ``W'`` and λ belong to the group of
their block, as the target weight they are added to.

Layers are found in timm models (``group_matcher``), m2pt models (``blocks.N``) and Hugging Face
models (``embeddings`` → layer 0, ``encoder.layer.N`` / ``encoder.layers.N`` / ``layers.N`` →
block N + 1, the rest → the head).

Two conventions for the learning rate of a group exist, and :func:`param_groups` serves both:

* timm (and m2pt's trainer) keep a multiplier in ``group["lr_scale"]`` and let the scheduler set
  ``lr = base_lr * lr_scale``; this is what ``param_groups(model)`` returns.
* ``torch.optim`` schedulers, Lightning and the Hugging Face Trainer read ``group["lr"]`` and
  ignore ``lr_scale``; ``param_groups(model, lr=base_lr)`` sets ``lr = base_lr * scale`` in each
  group (and then leaves ``lr_scale`` out, since timm's schedulers would apply it a second time).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Optional

from torch import nn

from .attach import unwrap_model
from .config import DEFAULT_BLOCK_PATTERN, PathwayConfig
from .layer import BiasPathway, Pathway
from .peft_compat import warn_if_unprepared

# Hugging Face stacks: ViT/BERT/VideoMAE/AST ``encoder.layer.N``, wav2vec2/CLIP ``encoder.layers.N``,
# decoder-only LMs ``layers.N``, GPT-2 ``h.N``.
HF_BLOCK_PATTERN = r"(?:^|\.)(?:encoder\.layers?|layers|h)\.(\d+)\."

_STEM = re.compile(
    r"^(cls_token|cls_pos|pos_embed|patch_embed|mask_token|reg_token|encoder\.|embed)"  # timm / m2pt
    r"|(?:^|\.)(embeddings|embed_tokens|wte|wpe|feature_extractor|feature_projection|pos_conv_embed|"
    r"masked_spec_embed|pre_layrnorm)(?:\.|$)")  # Hugging Face

# Tokens and position embeddings are never decayed, whatever their rank (timm lists them in
# ``no_weight_decay()``; Hugging Face models list nothing).
_NO_DECAY_NAME = re.compile(
    r"(?:^|\.)(cls_token|mask_token|reg_token|dist_token|distillation_token|class_embedding|pos_embed|"
    r"position_embeddings?|masked_spec_embed)(?:\.weight)?$")


def pathway_scale_ids(model: nn.Module) -> set[int]:
    """``id`` of every λ parameter in ``model``."""
    return {id(m.scale) for m in model.modules() if isinstance(m, Pathway)}


def pathway_parameter_names(model: nn.Module) -> dict[str, list[str]]:
    """Parameter names of the pathways of ``model``, by role.

    Returns:
        ``{"scale": [...λ...], "aux_weight": [...W'...], "aux_bias": [...b'...]}``, names as in
        ``model.named_parameters()`` (a DDP / ``torch.compile`` wrapper is unwrapped).
    """
    model = unwrap_model(model)
    roles: dict[int, str] = {}
    for module in model.modules():
        if isinstance(module, Pathway):
            roles[id(module.scale)] = "scale"
            roles[id(module.aux_weight)] = "aux_weight"
        elif isinstance(module, BiasPathway):
            roles[id(module.aux_bias)] = "aux_bias"
    names: dict[str, list[str]] = {"scale": [], "aux_weight": [], "aux_bias": []}
    for name, param in model.named_parameters():
        if id(param) in roles:
            names[roles[id(param)]].append(name)
    return names


class PathwayNoWeightDecay:
    """``model.no_weight_decay()`` of a model with pathways: its own names plus every λ and ``b'``.

    timm's ``create_optimizer_v2(model, ...)`` (and anything else that reads
    ``no_weight_decay()``) then leaves λ undecayed whatever its shape; a per-channel λ is 2-D, so
    the usual "no decay below 2-D" rule misses it.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self) -> set[str]:
        own = getattr(type(self.model), "no_weight_decay", None)
        names = set(own(self.model)) if callable(own) else set()
        roles = pathway_parameter_names(self.model)
        return names | set(roles["scale"]) | set(roles["aux_bias"])


def expose_pathway_names(model: nn.Module) -> None:
    """Give ``model`` a ``no_weight_decay()`` that lists its pathway scales (see :class:`PathwayNoWeightDecay`)."""
    if not isinstance(model.__dict__.get("no_weight_decay"), PathwayNoWeightDecay):
        model.no_weight_decay = PathwayNoWeightDecay(model)


def forget_pathway_names(model: nn.Module) -> None:
    """Undo :func:`expose_pathway_names` (a merged model is the vanilla one again)."""
    if isinstance(model.__dict__.get("no_weight_decay"), PathwayNoWeightDecay):
        del model.__dict__["no_weight_decay"]


def no_weight_decay_names(model: nn.Module) -> list[str]:
    """Names of the parameters :func:`param_groups` exempts from weight decay.

    Useful for tools that take a list of names, e.g. a Hugging Face ``Trainer`` subclass
    overriding ``get_decay_parameter_names``, or timm's ``no_weight_decay_list``.
    """
    model = unwrap_model(model)
    skip = _model_no_weight_decay(model, ())
    scale_ids = pathway_scale_ids(model)
    bias_ids = {id(m.aux_bias) for m in model.modules() if isinstance(m, BiasPathway)}
    return [name for name, param in model.named_parameters()
            if _is_no_decay(name, param, skip, scale_ids, bias_ids)]


def _model_no_weight_decay(model: nn.Module, extra: Iterable[str]) -> set[str]:
    skip = set(extra)
    if callable(getattr(model, "no_weight_decay", None)):
        skip |= set(model.no_weight_decay())
    return skip


def _is_no_decay(name: str, param: nn.Parameter, skip: set[str], scale_ids: set[int], bias_ids: set[int]) -> bool:
    return (id(param) in scale_ids or id(param) in bias_ids or param.ndim <= 1 or name.endswith(".bias")
            or name.endswith(".bias.original") or _NO_DECAY_NAME.search(_vanilla_name(name)) is not None
            or any(name == s or name.startswith(s + ".") for s in skip))


def _vanilla_name(name: str) -> str:
    """``a.weight`` for ``a.parametrizations.weight.original`` (the name the model had before pathways)."""
    return re.sub(r"\.parametrizations\.(\w+)\.original$", r".\1", name)


def _block_id(name: str, pattern: str) -> Optional[int]:
    match = re.search(pattern, name) or re.search(HF_BLOCK_PATTERN, name)
    return int(match.group(1)) if match else None


def _layer_ids(model: nn.Module, names: list[str], block_pattern: str) -> tuple[dict[str, int], int]:
    """Layer index per parameter name: 0 = embeddings, 1..depth = blocks, depth+1 = the rest."""
    if hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        layer_map = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
        return {n: layer_map.get(n, max(layer_map.values())) for n in names}, max(layer_map.values()) + 1
    blocks = {n: b for n in names if (b := _block_id(n, block_pattern)) is not None}
    depth = max(blocks.values()) + 1 if blocks else 0
    ids = {n: blocks[n] + 1 if n in blocks else (0 if _STEM.search(n) else depth + 1) for n in names}
    return ids, depth + 2


def param_groups(
    model: nn.Module,
    weight_decay: float = 0.05,
    layer_decay: Optional[float] = None,
    scale_lr_mult: Optional[float] = None,
    no_weight_decay: Iterable[str] = (),
    lr: Optional[float] = None,
) -> list[dict[str, Any]]:
    """Parameter groups for any ``torch.optim`` optimizer, with the paper's conventions.

    Examples::

        # torch / Lightning / Hugging Face Trainer: each group's lr is set
        opt = torch.optim.AdamW(m2pt.param_groups(model, lr=1e-3, layer_decay=0.75))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)

        # timm: the factory builds the optimizer, its schedulers apply ``lr_scale``
        opt = timm.optim.create_optimizer_v2(
            model, "adamw", lr=1e-3, param_group_fn=functools.partial(m2pt.param_groups, layer_decay=0.75))

    Args:
        model: A model with or without pathways (a DDP wrapper is unwrapped): timm, m2pt or
            Hugging Face layouts.
        weight_decay: Decay for weight matrices (``W`` and ``W'``).
        layer_decay: Layer-wise lr decay factor (0.65–0.75 in the paper's recipes); None
            disables it. Block ``i`` of ``depth`` gets ``layer_decay ** (depth + 1 - (i + 1))``.
        scale_lr_mult: Learning-rate multiplier for λ; defaults to the model's
            ``PathwayConfig.scale_lr_mult`` (1.0 = paper).
        no_weight_decay: Extra parameter names (or name prefixes) without weight decay, added
            to the model's own ``no_weight_decay()``.
        lr: Base learning rate. Given, each group gets ``lr = lr * scale`` (what torch
            schedulers, Lightning and the HF Trainer read) and records the factor under
            ``lr_scale_applied``; None, each group carries the factor as ``lr_scale``
            instead (timm's schedulers and m2pt's trainer multiply it in).

    Returns:
        Groups with keys ``params``, ``weight_decay``, ``name`` and either ``lr_scale`` or
        ``lr`` + ``lr_scale_applied``; only parameters with ``requires_grad`` are included.

    Raises:
        ValueError: ``lr`` is not a positive number.
    """
    if lr is not None and not lr > 0:
        raise ValueError(f"param_groups: lr must be a positive number, got {lr!r}.")
    model = unwrap_model(model)
    warn_if_unprepared(model)
    config = getattr(model, "pathway_config", None)
    if scale_lr_mult is None:
        scale_lr_mult = config.scale_lr_mult if isinstance(config, PathwayConfig) else 1.0
    skip = _model_no_weight_decay(model, no_weight_decay)
    scale_ids = pathway_scale_ids(model)
    bias_ids = {id(m.aux_bias) for m in model.modules() if isinstance(m, BiasPathway)}
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    pattern = config.block_pattern if isinstance(config, PathwayConfig) else DEFAULT_BLOCK_PATTERN
    layer_ids, num_layers = _layer_ids(model, [n for n, _ in named], pattern)

    groups: dict[tuple[int, str], dict[str, Any]] = {}
    for name, param in named:
        is_scale = id(param) in scale_ids
        no_decay = _is_no_decay(name, param, skip, scale_ids, bias_ids)
        kind = "scale" if is_scale else ("no_decay" if no_decay else "decay")
        layer = layer_ids[name]
        key = (layer, kind)
        if key not in groups:
            scale = layer_decay ** (num_layers - 1 - layer) if layer_decay is not None else 1.0
            scale *= scale_lr_mult if is_scale else 1.0
            groups[key] = {"name": f"layer{layer}_{kind}", "params": [],
                           "weight_decay": 0.0 if no_decay else weight_decay}
            if lr is None:
                groups[key]["lr_scale"] = scale
            else:
                groups[key].update(lr=lr * scale, lr_scale_applied=scale)
        groups[key]["params"].append(param)
    return [groups[k] for k in sorted(groups)]
