"""``add_pathways``: connect a target model to one or more auxiliary models."""

from __future__ import annotations

import gc
import re
import warnings
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..checkpoints.formats import CheckpointError, convert_checkpoint, is_pathway_key, select_hf_layout
from .config import PathwayConfig
from .errors import PathwayError
from .hf_target import HFTargetLinear, guard_save_pretrained, hf_target_linears, uses_canonical_names
from .module import attach_pathway, has_pathways, iter_pathway_layers, original_tensor

AuxiliarySource = Union[nn.Module, Mapping[str, Tensor]]


@dataclass(frozen=True)
class _PlannedPathway:
    """One validated connection, computed before the model is touched."""

    target_name: str
    aux_index: int
    aux_name: str
    aux_weight: Tensor
    aux_bias: Optional[Tensor]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP / DataParallel / ``torch.compile`` wrapper."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


_WRAPPERS = (nn.parallel.DistributedDataParallel, nn.DataParallel)


def _parallel_wrapper_of(module: nn.Module) -> Optional[nn.Module]:
    """The DDP / DataParallel wrapper that holds ``module`` as its ``.module``, if any.

    A wrapper keeps its child in its ``_modules`` dict, held by the wrapper's ``__dict__``
    (or inline by the wrapper itself); nothing is set on the child.
    """
    for modules_dict in gc.get_referrers(module):
        if not isinstance(modules_dict, dict) or modules_dict.get("module") is not module:
            continue
        for holder in gc.get_referrers(modules_dict):
            if isinstance(holder, _WRAPPERS) and holder._modules is modules_dict:
                return holder
            if isinstance(holder, dict) and holder.get("_modules") is modules_dict:
                for owner in gc.get_referrers(holder):
                    if isinstance(owner, _WRAPPERS) and owner._modules is modules_dict:
                        return owner
    return None


def _check_target(target: nn.Module) -> None:
    """Refuse a wrapped target, a target inside a wrapper, and a target that has pathways."""
    if isinstance(target, _WRAPPERS):
        raise PathwayError(
            "add_pathways got a DistributedDataParallel/DataParallel model. Attach pathways to the plain "
            "model first, then wrap it, so that DDP sees the pathway parameters.")
    wrapper = _parallel_wrapper_of(target)
    if wrapper is not None:
        raise PathwayError(
            f"add_pathways got the model inside a {type(wrapper).__name__} (its .module): the wrapper was built "
            "before the pathways and would never all-reduce W' and λ. Attach pathways to the plain model "
            "first, then wrap it.")
    layers = [name for name, _ in iter_pathway_layers(target)]
    if layers:
        raise PathwayError(
            f"{type(target).__name__} already has pathways ({len(layers)} layers, e.g. {layers[0]!r}); calling "
            "add_pathways again would stack a second set. Pass every auxiliary model in one call "
            "(add_pathways(target, [aux_a, aux_b])), or merge first (m2pt.merge_pathways) to start from W + λW'.")


def _check_finite(planned: Sequence["_PlannedPathway"], index: int) -> None:
    """Refuse auxiliary weights (and biases) that pathways would use when they hold NaN or Inf."""
    bad = [f"{p.aux_name}.{kind}" for p in planned
           for kind, tensor in (("weight", p.aux_weight), ("bias", p.aux_bias))
           if tensor is not None and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise PathwayError(
            f"auxiliary #{index} has non-finite (NaN or Inf) values in {len(bad)} tensor(s) that pathways would "
            f"use: {bad[:8]}. The checkpoint is corrupt or diverged; pass a finite auxiliary model.")


def _aux_state(aux: AuxiliarySource, index: int, canonical: bool) -> dict[str, Tensor]:
    """The auxiliary's tensors; a Hugging Face encoder is renamed to ``blocks.N.attn.qkv``... when
    ``canonical`` (the config names layers the default way)."""
    if isinstance(aux, nn.Module):
        state = aux.state_dict(keep_vars=False)
        own_pathways = has_pathways(aux)
    elif isinstance(aux, Mapping):
        state = dict(aux)
        own_pathways = any(is_pathway_key(k) for k in state)
    else:
        raise PathwayError(
            f"auxiliary #{index} is a {type(aux).__name__}; pass an nn.Module, a state_dict, or "
            "the result of m2pt.load_auxiliary(path).")
    if own_pathways:
        raise PathwayError(
            f"auxiliary #{index} has pathways of its own; merge it first with m2pt.merge_pathways(aux).")
    if canonical:
        try:
            if select_hf_layout(list(state)) is not None:
                state = convert_checkpoint(aux).state_dict
        except CheckpointError as exc:
            raise PathwayError(f"auxiliary #{index}: {exc}") from exc
    return state


def _block_index(name: str, pattern: str) -> Optional[int]:
    match = re.search(pattern, name + ".")
    return int(match.group(1)) if match else None


def _block_indices(names: Sequence[str], pattern: str) -> list[int]:
    return sorted({i for i in (_block_index(n, pattern) for n in names) if i is not None})


def _pairing(target_blocks: list[int], aux_blocks: list[int], config: PathwayConfig, index: int) -> dict[int, int]:
    pairing = config.block_pairing
    if isinstance(pairing, dict):
        bad_t = sorted(set(pairing) - set(target_blocks))
        bad_a = sorted(set(pairing.values()) - set(aux_blocks))
        if bad_t or bad_a:
            raise PathwayError(
                f"block_pairing names blocks that do not exist: target {bad_t or '-'} "
                f"(target has {target_blocks}), auxiliary #{index} {bad_a or '-'} (it has {aux_blocks}).")
        return dict(pairing)
    if len(target_blocks) != len(aux_blocks):
        raise PathwayError(
            f"depth mismatch: the target has {len(target_blocks)} blocks with pathway layers, auxiliary "
            f"#{index} has {len(aux_blocks)}. m2pt never truncates silently: pass "
            "PathwayConfig(block_pairing={target_block: aux_block, ...}) to pair blocks explicitly.")
    ordered = aux_blocks if pairing == "in_order" else aux_blocks[::-1]
    return dict(zip(target_blocks, ordered))


def _aux_module_name(target_name: str, pairing: dict[int, int], pattern: str) -> Optional[str]:
    """The auxiliary counterpart of a target module name, or None if its block is unpaired."""
    match = re.search(pattern, target_name + ".")
    if match is None:
        return target_name
    block = int(match.group(1))
    if block not in pairing:
        return None
    start, end = match.span(1)
    return target_name[:start] + str(pairing[block]) + target_name[end:]


def _matched_modules(target: nn.Module, config: PathwayConfig) -> list[tuple[str, nn.Module]]:
    matched = [(name, m) for name, m in target.named_modules() if name and config.matches(name)]
    if not matched:
        sample = [n for n, _ in target.named_modules() if n][:12]
        raise PathwayError(
            f"no layer matched layers={config.layers!r} in {type(target).__name__}. Module names look like "
            f"{sample}. Pass PathwayConfig(layers=[suffixes]) or a regular expression for the full name.")
    for name, module in matched:
        weight = original_tensor(module, "weight") if hasattr(module, "weight") else None
        if not isinstance(weight, Tensor):
            raise PathwayError(
                f"layer {name!r} ({type(module).__name__}) matched layers={config.layers!r} but has no 'weight' "
                "parameter; narrow `layers` so that it names only layers with weights.")
    return matched


def _warn_head_mismatch(target: nn.Module, aux: AuxiliarySource, plan: list[_PlannedPathway]) -> None:
    if not isinstance(aux, nn.Module):
        return
    aux_modules = dict(aux.named_modules())
    target_modules = dict(target.named_modules())
    for item in plan:
        t_parent = target_modules.get(item.target_name.rpartition(".")[0])
        a_parent = aux_modules.get(item.aux_name.rpartition(".")[0])
        t_heads, a_heads = getattr(t_parent, "num_heads", None), getattr(a_parent, "num_heads", None)
        if t_heads and a_heads and t_heads != a_heads:
            warnings.warn(
                f"{item.target_name}: target attention has {t_heads} heads, auxiliary #{item.aux_index} has "
                f"{a_heads}. The pathway adds the weights elementwise, but the auxiliary's heads are grouped "
                "differently from the target's.", stacklevel=3)
            return


def _no_aux_names_match(state: Mapping[str, Tensor], config: PathwayConfig, index: int,
                         target_blocks: list[int]) -> PathwayError:
    sample = [k for k in state if k.endswith(".weight")][:6]
    return PathwayError(
        f"no auxiliary names match: block_pattern={config.block_pattern!r} finds no block index in the names of "
        f"auxiliary #{index} (its weights are named like {sample}), while the target's matched layers are in "
        f"blocks {target_blocks}. The auxiliary must use the target's module names: load checkpoints of other "
        "codebases with m2pt.load_auxiliary(path), or pass a state dict renamed to the target's names.")


def _plan(target: nn.Module, auxes: Sequence[AuxiliarySource], config: PathwayConfig) -> list[_PlannedPathway]:
    hf_linears = hf_target_linears(target, config)
    if hf_linears is None:
        matched = _matched_modules(target, config)
        target_blocks = _block_indices([n for n, _ in matched], config.block_pattern)
        hf_by_name: dict[str, HFTargetLinear] = {}
    else:
        modules = dict(target.named_modules())
        matched = [(linear.module_name, modules[linear.module_name]) for linear in hf_linears]
        target_blocks = sorted({linear.block for linear in hf_linears})
        hf_by_name = {linear.module_name: linear for linear in hf_linears}
    plan: list[_PlannedPathway] = []
    for index, aux in enumerate(auxes):
        state = _aux_state(aux, index, canonical=uses_canonical_names(config))
        aux_blocks = _block_indices([k for k in state if k.endswith(".weight")], config.block_pattern)
        if target_blocks and not aux_blocks:
            raise _no_aux_names_match(state, config, index, target_blocks)
        pairing = _pairing(target_blocks, aux_blocks, config, index) if target_blocks else {}
        for name, module in matched:
            hf_linear = hf_by_name.get(name)
            if hf_linear is not None:
                if hf_linear.block not in pairing:
                    continue
                aux_name = hf_linear.aux_name(pairing[hf_linear.block])
            else:
                aux_name = _aux_module_name(name, pairing, config.block_pattern)
            if aux_name is None:
                continue
            aux_weight = state.get(f"{aux_name}.weight")
            if aux_weight is None:
                raise PathwayError(
                    f"auxiliary layer missing: target layer {name!r} needs '{aux_name}.weight' in auxiliary #{index}, "
                    f"which has {len(state)} tensors such as {list(state)[:6]}. Both models must use the same module "
                    "names; load checkpoints of other codebases with m2pt.load_auxiliary(path).")
            source_bias = state.get(f"{aux_name}.bias")
            if hf_linear is not None:
                aux_weight = hf_linear.take(aux_weight)
                source_bias = hf_linear.take(source_bias) if source_bias is not None else None
                aux_name = hf_linear.describe(pairing[hf_linear.block])
            target_weight = original_tensor(module, "weight")
            if tuple(aux_weight.shape) != tuple(target_weight.shape):
                raise PathwayError(
                    f"shape mismatch at {name!r}: target weight {tuple(target_weight.shape)}, auxiliary #{index} "
                    f"'{aux_name}.weight' {tuple(aux_weight.shape)}. Target and auxiliary need the same width, "
                    "MLP ratio and layer shapes.")
            aux_bias = None
            if config.aux_bias:
                has_target_bias = getattr(module, "bias", None) is not None
                aux_bias = source_bias
                if not has_target_bias or aux_bias is None:
                    which = "target layer" if not has_target_bias else f"auxiliary #{index} layer '{aux_name}'"
                    raise PathwayError(
                        f"aux_bias=True but the {which} has no bias at {name!r}; use aux_bias=False "
                        "(the paper's default) or restrict `layers` to layers with biases.")
            if config.aux_norm == "match_target":
                aux_weight = aux_weight.float() * (target_weight.detach().float().norm()
                                                   / aux_weight.float().norm().clamp_min(1e-12))
            plan.append(_PlannedPathway(name, index, aux_name, aux_weight, aux_bias))
        _check_finite([p for p in plan if p.aux_index == index], index)
    return plan


def add_pathways(
    target: nn.Module,
    aux: Union[AuxiliarySource, Sequence[AuxiliarySource]],
    config: Optional[PathwayConfig] = None,
    **config_overrides,
) -> nn.Module:
    """Connect every matching layer of ``target`` to the same layer of each auxiliary model.

    Each matched weight becomes ``W + λ W'`` (``W + Σ_k λ_k W'_k`` with several auxiliary
    models). ``target`` is modified in place and returned; the auxiliary models are only
    read (their weights are copied). Everything is validated before the target is touched,
    so on error the target is unchanged.

    A Hugging Face ``transformers`` encoder (ViT family, BERT family, CLIP towers, Dinov2,
    Wav2Vec2 / HuBERT / WavLM) is recognised as target and as auxiliary: with the default
    ``layers``, its separate query / key / value projections take their rows of the fused
    ``attn.qkv`` of the other side, and its output projection and MLP linears pair with
    ``attn.proj``, ``mlp.fc1`` and ``mlp.fc2``. Until :func:`m2pt.merge_pathways`, such a
    target refuses ``save_pretrained`` (it would save weights ``from_pretrained`` cannot read).

    A target that already holds PEFT LoRA layers (``peft.get_peft_model`` first) gets its
    pathways on the layers under them, paired by the module names of the plain model, and
    PEFT's merge made exact (see :mod:`m2pt.pathway.peft_compat`).

    Args:
        target: The model to improve, e.g. a timm ``VisionTransformer`` or a ``transformers``
            ``ViTForImageClassification``.
        aux: An auxiliary model (``nn.Module`` or state_dict with the target's module
            names, e.g. from :func:`m2pt.load_auxiliary`, or a live ``transformers``
            encoder), or a list of them.
        config: Pathway options; defaults reproduce the paper.
        **config_overrides: Shortcut for fields of :class:`PathwayConfig`,
            e.g. ``add_pathways(t, a, scale_init=1e-4)``.

    Returns:
        ``target``, with pathways.

    Raises:
        PathwayError: no layer matched, a layer is missing from an auxiliary model, shapes
            or depths differ, an auxiliary weight is not finite, the target already has
            pathways, or the target is (or is inside) a DDP / DataParallel wrapper.
    """
    _check_target(target)
    from .optim import expose_pathway_names
    from .peft_compat import add_lora_merge_check, add_pathways_under_peft, lora_layers

    if lora_layers(target):
        return add_pathways_under_peft(target, aux, config, **config_overrides)
    config = config or PathwayConfig()
    if config_overrides:
        config = PathwayConfig.from_dict({**config.to_dict(), **config_overrides})
    auxes = list(aux) if isinstance(aux, (list, tuple)) else [aux]
    if not auxes:
        raise PathwayError("add_pathways needs at least one auxiliary model.")

    plan = _plan(target, auxes, config)
    if not plan:
        raise PathwayError("block_pairing paired no target block with an auxiliary block: nothing to connect.")
    for aux_index, aux_model in enumerate(auxes):
        _warn_head_mismatch(target, aux_model, [p for p in plan if p.aux_index == aux_index])

    modules = dict(target.named_modules())
    for item in plan:
        attach_pathway(
            modules[item.target_name], item.aux_weight, item.aux_bias,
            scale_init=config.scale_init, per_channel=config.scale_shape == "channel",
            train_scale=config.train_scale, train_aux=config.train_aux, train_target=config.train_target,
            aux_name=item.aux_name, aux_index=item.aux_index,
        )
        if config.split_under_autocast:
            modules[item.target_name].split_under_autocast = True
    target.pathway_config = config
    guard_save_pretrained(target)
    expose_pathway_names(target)
    add_lora_merge_check(target)
    return target
