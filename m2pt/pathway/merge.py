"""``merge_pathways``: fold every pathway into a plain model of the original architecture."""

from __future__ import annotations

import copy

from torch import nn

from .attach import unwrap_model
from .errors import PathwayError
from .hf_target import release_save_pretrained
from .module import fold_pathways, iter_pathway_layers, nonfinite_tensors
from .optim import forget_pathway_names
from .peft_compat import remove_lora_merge_check


def merge_pathways(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return ``model`` with every ``W + Σ λ W'`` folded into a plain ``W``.

    Each merged tensor is computed in float32 and cast once to the parameter's dtype. The
    result has exactly the modules, classes and parameter names of the vanilla model, so its
    ``state_dict`` loads with ``strict=True`` into a freshly built model without m2pt.

    Args:
        model: A model with pathways (a DDP or ``torch.compile`` wrapper is unwrapped).
        inplace: Merge into ``model`` itself instead of a deep copy.

    Raises:
        PathwayError: the model has no pathways, or a merged weight would hold NaN/Inf (then
            the model is left untouched, whatever ``inplace`` says).
    """
    model = unwrap_model(model)
    layers = list(iter_pathway_layers(model))
    if not layers:
        raise PathwayError(
            f"merge_pathways: {type(model).__name__} has no pathways (already merged, or m2pt.add_pathways "
            "was never called on it).")
    bad = [f"{name}.{tensor}" for name, module in layers for tensor in nonfinite_tensors(module)]
    if bad:
        raise PathwayError(
            f"merge_pathways refused: the merged value of {len(bad)} tensor(s) is not finite, e.g. {bad[:5]}. "
            "The model is untouched; check λ and W' (training may have diverged).")
    if not inplace:
        model = copy.deepcopy(model)
        layers = list(iter_pathway_layers(model))
    for _, module in layers:
        fold_pathways(module)
    if "pathway_config" in model.__dict__:
        del model.__dict__["pathway_config"]
    release_save_pretrained(model)
    forget_pathway_names(model)
    remove_lora_merge_check(model)
    return model
