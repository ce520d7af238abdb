"""Pathways and PEFT (LoRA) adapters on the same layers, in either order.

PEFT wraps a layer in a tuner layer (``lora.Linear``) that keeps the original as
``base_layer``. Two things go wrong when that base layer carries a pathway:

* PEFT merges by writing ``base_layer.weight.data``; under a ``torch.nn.utils.parametrize``
  parametrization ``base_layer.weight`` is recomputed on every read, so the write lands in a
  temporary and the LoRA update is lost without a word.
* ``peft.get_peft_model`` freezes every parameter whose name lacks ``lora_``, λ and ``W'``
  included.

m2pt fixes both on the layers it knows about: :func:`prepare_peft_model` (pathways first, then
PEFT) and :func:`m2pt.add_pathways` on a PEFT model (PEFT first) give each LoRA layer over a
pathway layer a ``merge`` that folds the pathway (exactly, in float32) before PEFT adds its
update, so ``merge_and_unload()`` is exact whatever the order of the merges.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import torch
from torch import nn

from .errors import PathwayError
from .layer import BiasPathway, Pathway
from .module import fold_pathways, pathways_of

_GUARD_MARKER = "_m2pt_lora_guard"


def _is_tuner_layer(module: nn.Module) -> bool:
    cls = type(module)  # class attributes first: this runs on every forward of a pathway model
    return callable(getattr(cls, "get_base_layer", None)) and callable(getattr(cls, "merge", None)) \
        and isinstance(module._modules.get("base_layer"), nn.Module)


def lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The outermost PEFT tuner layers of ``model`` (``(name, layer)``), e.g. ``lora.Linear``."""
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if _is_tuner_layer(module) and not any(name.startswith(outer + ".") for outer, _ in found):
            found.append((name, module))
    return found


def _guarded_merge(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """Fold the base layer's pathways into its weights, then let PEFT merge its adapters."""
    base = self.get_base_layer()
    if pathways_of(base):
        fold_pathways(base)
    return type(self)._m2pt_peft_class.merge(self, *args, **kwargs)


_GUARDED_CLASSES: dict[type, type] = {}


def _guard(layer: nn.Module) -> bool:
    peft_class = type(layer)
    if getattr(peft_class, _GUARD_MARKER, False):
        return False
    if peft_class not in _GUARDED_CLASSES:
        _GUARDED_CLASSES[peft_class] = type(peft_class.__name__, (peft_class,), {
            _GUARD_MARKER: True, "_m2pt_peft_class": peft_class, "merge": _guarded_merge,
            "__module__": peft_class.__module__, "__qualname__": peft_class.__qualname__})
    layer.__class__ = _GUARDED_CLASSES[peft_class]
    return True


def guard_lora_merges(model: nn.Module) -> int:
    """Make PEFT's merge exact on every LoRA layer whose base layer carries pathways.

    Returns:
        How many layers were newly guarded.
    """
    return sum(_guard(layer) for _, layer in lora_layers(model) if pathways_of(layer.get_base_layer()))


def unguarded_lora_layers(model: nn.Module) -> list[str]:
    """Names of LoRA layers over pathway layers whose PEFT merge would lose the LoRA update."""
    return [name for name, layer in lora_layers(model)
            if pathways_of(layer.get_base_layer()) and not getattr(type(layer), _GUARD_MARKER, False)]


def _pathway_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter, bool]]:
    """``(role, parameter, should_train)`` for λ, ``W'`` and ``b'``, as the pathway config asks."""
    config = getattr(model, "pathway_config", None)
    train_scale = getattr(config, "train_scale", True)
    train_aux = getattr(config, "train_aux", True)
    for module in model.modules():
        if isinstance(module, Pathway):
            yield "scale", module.scale, train_scale
            yield "aux_weight", module.aux_weight, train_aux
        elif isinstance(module, BiasPathway):
            yield "aux_bias", module.aux_bias, train_aux


def frozen_pathway_parameters(model: nn.Module) -> list[str]:
    """Roles of pathway parameters that the pathway config trains but that are frozen now."""
    return sorted({role for role, param, train in _pathway_parameters(model) if train and not param.requires_grad})


def prepare_peft_model(model: nn.Module) -> nn.Module:
    """Make a PEFT model built over a pathway model train and merge as m2pt intends.

    Call it after ``peft.get_peft_model(pathway_model, config)``. It gives λ and ``W'`` back the
    ``requires_grad`` their :class:`~m2pt.PathwayConfig` asks for (PEFT froze them) and makes
    PEFT's merge exact on LoRA layers over pathway layers (see the module docstring).

    Args:
        model: The PEFT model (or any model holding PEFT tuner layers and pathways).

    Returns:
        ``model``, changed in place.

    Raises:
        PathwayError: ``model`` has no pathways.
    """
    if not any(True for _ in _pathway_parameters(model)):
        raise PathwayError(
            f"prepare_peft_model: {type(model).__name__} has no pathways. Attach them before PEFT "
            "(m2pt.add_pathways(target, aux), then peft.get_peft_model), or call m2pt.add_pathways on the PEFT model.")
    for _, param, train in _pathway_parameters(model):
        param.requires_grad_(train)
    guard_lora_merges(model)
    return model


def warn_if_unprepared(model: nn.Module) -> None:
    """Warn when PEFT froze pathway parameters or a PEFT merge would drop LoRA updates."""
    if not lora_layers(model):
        return
    frozen = frozen_pathway_parameters(model)
    unguarded = unguarded_lora_layers(model)
    if frozen or unguarded:
        problems = ([f"PEFT froze the pathway parameters {frozen}"] if frozen else []) + (
            [f"PEFT's merge would drop the LoRA update of {len(unguarded)} layer(s) such as {unguarded[0]!r}"]
            if unguarded else [])
        warnings.warn(
            "; ".join(problems) + ". Call m2pt.prepare_peft_model(model) after peft.get_peft_model.", stacklevel=3)


class LoraMergeCheck:
    """Forward pre-hook of a pathway model: guards PEFT layers that appeared since the last call.

    A safety net for pathways-first models on which :func:`prepare_peft_model` was not called:
    the first forward after ``peft.get_peft_model`` makes PEFT's merge exact and warns once if
    PEFT froze λ or ``W'``. PEFT puts its layer where the pathway layer was, so a look at those
    slots (microseconds) tells whether anything changed. Skipped while torch.compile /
    torch.export trace the model.

    Args:
        slots: ``(parent, child_name)`` of every pathway layer of the model.
    """

    def __init__(self, slots: list[tuple[nn.Module, str]]) -> None:
        self.slots = [(parent, name, parent._modules.get(name)) for parent, name in slots]
        self.warned = False

    def __call__(self, module: nn.Module, args: Any) -> None:
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting():
            return
        changed = False
        for index, (parent, name, occupant) in enumerate(self.slots):
            current = parent._modules.get(name)
            if current is not occupant:
                self.slots[index] = (parent, name, current)
                changed = True
        if not changed or not lora_layers(module):
            return
        if not self.warned and frozen_pathway_parameters(module):
            self.warned = True
            warn_if_unprepared(module)
        guard_lora_merges(module)


def add_lora_merge_check(model: nn.Module) -> None:
    """Register :class:`LoraMergeCheck` on ``model`` (replacing an earlier one)."""
    from .module import iter_pathway_layers

    remove_lora_merge_check(model)
    slots = []
    for name, _ in iter_pathway_layers(model):
        if name:
            parent_name, _, child = name.rpartition(".")
            slots.append((model.get_submodule(parent_name), child))
    model.register_forward_pre_hook(LoraMergeCheck(slots))


def remove_lora_merge_check(model: nn.Module) -> None:
    """Remove :class:`LoraMergeCheck` from ``model`` (a merged model is the vanilla one again)."""
    for key, hook in list(model._forward_pre_hooks.items()):
        if isinstance(hook, LoraMergeCheck):
            del model._forward_pre_hooks[key]


@contextlib.contextmanager
def _base_layers_in_place(model: nn.Module) -> Iterator[None]:
    """Temporarily put each PEFT tuner layer's base layer where the tuner layer is."""
    swapped = []
    try:
        for name, layer in lora_layers(model):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            setattr(parent, child, layer.get_base_layer())
            swapped.append((parent, child, layer))
        yield
    finally:
        for parent, child, layer in reversed(swapped):
            setattr(parent, child, layer)


def add_pathways_under_peft(target: nn.Module, aux: Any, config: Any = None, **config_overrides: Any) -> nn.Module:
    """:func:`m2pt.add_pathways` for a model that already holds PEFT tuner layers (LoRA first).

    Pathways go on the base layers under the LoRA layers, with the module names of the plain
    model (``blocks.0.attn.qkv``, not ``base_model.model.blocks.0.attn.qkv.base_layer``), so the
    auxiliary model pairs as it would with the model before PEFT.
    """
    from .attach import add_pathways

    base = target.get_base_model() if callable(getattr(target, "get_base_model", None)) else target
    with _base_layers_in_place(base):
        add_pathways(base, aux, config, **config_overrides)
    guard_lora_merges(base)
    return target
