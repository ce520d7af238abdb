"""Attaching pathways to one module, finding them, and folding them back (merge).

A module with pathways keeps its own class underneath: ``torch.nn.utils.parametrize`` wraps
it in ``Parametrized<Class>`` and m2pt adds one thin subclass, ``Pathway<Class>``, whose only
additions are its name (so ``print(model)`` shows where pathways are) and :meth:`fuse`, the
hook that ``timm.utils.reparameterize_model`` calls to turn it back into a plain module.
"""

from __future__ import annotations

import copy
from typing import Iterator, Optional, Union

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .errors import PathwayError
from .layer import BiasPathway, Pathway, split_linear_forward

PathwayParametrization = Union[Pathway, BiasPathway]

_MARKER = "_m2pt_pathway_class"


def pathways_of(module: nn.Module) -> dict[str, list[PathwayParametrization]]:
    """The pathway parametrizations of ``module``, by tensor name (``{}`` when none)."""
    if not parametrize.is_parametrized(module):
        return {}
    found: dict[str, list[PathwayParametrization]] = {}
    for tensor_name, plist in module.parametrizations.items():
        chain = [p for p in plist if isinstance(p, (Pathway, BiasPathway))]
        if chain:
            found[tensor_name] = chain
    return found


def iter_pathway_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(name, module)`` for every module of ``model`` (itself included) that carries pathways."""
    for name, module in model.named_modules():
        if pathways_of(module):
            yield name, module


def has_pathways(model: nn.Module) -> bool:
    """Whether ``model`` or any module inside it carries at least one pathway."""
    return next(iter_pathway_layers(model), None) is not None


def weight_pathways(module: nn.Module) -> list[Pathway]:
    """The weight pathways of a layer, one per auxiliary model, in attach order."""
    return [p for p in pathways_of(module).get("weight", []) if isinstance(p, Pathway)]


def original_tensor(module: nn.Module, tensor_name: str) -> nn.Parameter:
    """The target's own parameter under a pathway (``W``, without ``λ W'``)."""
    if parametrize.is_parametrized(module, tensor_name):
        return module.parametrizations[tensor_name].original
    return getattr(module, tensor_name)


def _fuse(self: nn.Module) -> nn.Module:
    """Return a plain copy of this layer with its pathways merged (timm's reparameterize hook)."""
    plain = copy.deepcopy(self)
    fold_pathways(plain)
    return plain


def _split_forward(self: nn.Module, x: Tensor) -> Tensor:
    """``nn.Linear.forward``, or :func:`split_linear_forward` when ``split_under_autocast`` is on."""
    if getattr(self, "split_under_autocast", False):
        return split_linear_forward(self, x)
    return super(type(self), self).forward(x)


def _mark_pathway_class(module: nn.Module) -> None:
    if getattr(type(module), _MARKER, False):
        return
    parametrized_cls = type(module)
    original_cls = parametrized_cls.__bases__[0]
    members = {_MARKER: True, "_m2pt_original_class": original_cls, "fuse": _fuse, "__module__": __name__}
    if original_cls is nn.Linear:
        members["forward"] = _split_forward
    module.__class__ = type(f"Pathway{original_cls.__name__}", (parametrized_cls,), members)


def attach_pathway(
    module: nn.Module,
    aux_weight: Tensor,
    aux_bias: Optional[Tensor] = None,
    *,
    scale_init: float = 0.0,
    per_channel: bool = False,
    train_scale: bool = True,
    train_aux: bool = True,
    train_target: bool = True,
    aux_name: str = "",
    aux_index: int = 0,
) -> Pathway:
    """Give ``module.weight`` (and optionally ``module.bias``) a pathway to an auxiliary tensor.

    The auxiliary tensors are copied into the dtype and device of the target parameter.
    Attaching to a module that already has pathways chains them:
    ``W + λ_0 W'_0 + λ_1 W'_1``.

    Raises:
        PathwayError: shape mismatch, a module without a ``weight`` parameter, or a
            module that already carries parametrizations other than pathways.
    """
    weight = original_tensor(module, "weight") if hasattr(module, "weight") else None
    if not isinstance(weight, Tensor):
        raise PathwayError(f"{type(module).__name__} has no 'weight' parameter to attach a pathway to.")
    if tuple(aux_weight.shape) != tuple(weight.shape):
        raise PathwayError(
            f"shape mismatch: target weight {tuple(weight.shape)} vs auxiliary {aux_name!r} "
            f"{tuple(aux_weight.shape)}.")
    for tensor_name in ("weight", "bias") if aux_bias is not None else ("weight",):
        if parametrize.is_parametrized(module, tensor_name):
            foreign = [type(p).__name__ for p in module.parametrizations[tensor_name]
                       if not isinstance(p, (Pathway, BiasPathway))]
            if foreign:
                raise PathwayError(
                    f"'{tensor_name}' already has other parametrizations {foreign}; m2pt cannot merge "
                    "mixed parametrizations. Remove them (torch.nn.utils.parametrize.remove_parametrizations) first.")

    pathway = Pathway(
        aux_weight.detach().to(device=weight.device, dtype=weight.dtype, copy=True),
        scale_init=scale_init, per_channel=per_channel, train_scale=train_scale,
        train_aux=train_aux, aux_name=aux_name, aux_index=aux_index,
    )
    parametrize.register_parametrization(module, "weight", pathway)
    if aux_bias is not None:
        bias = original_tensor(module, "bias")
        if tuple(aux_bias.shape) != tuple(bias.shape):
            raise PathwayError(
                f"shape mismatch: target bias {tuple(bias.shape)} vs auxiliary {aux_name!r} bias "
                f"{tuple(aux_bias.shape)}.")
        bias_pathway = BiasPathway(
            aux_bias.detach().to(device=bias.device, dtype=bias.dtype, copy=True), pathway, train_aux=train_aux)
        parametrize.register_parametrization(module, "bias", bias_pathway)
    if not train_target:
        for tensor_name in ("weight", "bias"):
            target = original_tensor(module, tensor_name) if getattr(module, tensor_name, None) is not None else None
            if target is not None:
                target.requires_grad_(False)
    _mark_pathway_class(module)
    return pathway


def merged_tensor(module: nn.Module, tensor_name: str) -> Tensor:
    """``θ + Σ λ_k θ'_k`` computed in float32 and cast once to the parameter's dtype."""
    plist = module.parametrizations[tensor_name]
    original = plist.original
    merged = original.detach().to(torch.float32, copy=True)
    for pathway in plist:
        merged.add_(pathway.delta(torch.float32))
    return merged.to(original.dtype)


def nonfinite_tensors(module: nn.Module) -> list[str]:
    """Names of this layer's tensors whose merged value would hold NaN or Inf."""
    return [name for name in pathways_of(module) if not torch.isfinite(merged_tensor(module, name)).all()]


def fold_pathways(module: nn.Module) -> None:
    """Merge the pathways of one layer into its own parameters, in place.

    The parameters keep their vanilla names (``weight``, ``bias``), their identity and
    ``requires_grad``, and the module gets its original class back.

    Raises:
        PathwayError: a merged tensor would not be finite (the module is left untouched).
    """
    tensor_names = list(pathways_of(module))
    merged = {name: merged_tensor(module, name) for name in tensor_names}
    bad = [name for name, value in merged.items() if not torch.isfinite(value).all()]
    if bad:
        raise PathwayError(f"non-finite merged {bad} in {type(module).__name__}; nothing was merged.")
    originals = {name: module.parametrizations[name].original for name in tensor_names}
    # torch.nn.utils.parametrize.remove_parametrizations deletes the tensor's property from the
    # module's class, and deep copies of a parametrized module share that class: removing it
    # would break the other copies. Restoring the instance's class leaves the shared one intact.
    module.__class__ = type(module)._m2pt_original_class
    module.__dict__.pop("split_under_autocast", None)
    del module._modules["parametrizations"]
    for name, parameter in originals.items():
        with torch.no_grad():
            parameter.copy_(merged[name])
        module.register_parameter(name, parameter)
