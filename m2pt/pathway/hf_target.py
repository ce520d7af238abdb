"""Hugging Face ``transformers`` models as pathway targets.

The block linears of a ``transformers`` encoder are recognised by their names (the layouts of
:mod:`m2pt.checkpoints.hf_layouts`, in-memory spelling), and each is paired with the canonical
auxiliary linear of its block: separate ``q`` / ``k`` / ``v`` projections take their third of
the rows of the auxiliary's fused ``attn.qkv`` (``[q; k; v]``), ``o_proj`` / ``out_proj`` /
``attention.output.dense`` take ``attn.proj``, and the two MLP linears ``mlp.fc1`` / ``mlp.fc2``.

``save_pretrained`` of a model that still has pathways would write
``...parametrizations.weight.original`` keys that ``from_pretrained`` does not know, and load
random linears in their place; a model with pathways refuses it instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from torch import Tensor, nn

from ..checkpoints.hf_layouts import QKV_ROLES, ROLE_CANONICAL, find_hf_layouts, refusal
from .config import DEFAULT_BLOCK_PATTERN, DEFAULT_LAYERS, PathwayConfig
from .errors import PathwayError
from .module import has_pathways


@dataclass(frozen=True)
class HFTargetLinear:
    """One block linear of a Hugging Face target and the auxiliary tensor it takes.

    Attributes:
        module_name: The linear in the target (``layers.0.attention.q_proj``).
        block: Its block index.
        canonical: The auxiliary linear of the block it pairs with (``attn.qkv``, ...).
        part: 0 / 1 / 2 for the q / k / v rows of the fused qkv; None for the whole tensor.
    """

    module_name: str
    block: int
    canonical: str
    part: Optional[int] = None

    def aux_name(self, aux_block: int) -> str:
        return f"blocks.{aux_block}.{self.canonical}"

    def describe(self, aux_block: int) -> str:
        suffix = f"[{QKV_ROLES[self.part]} rows]" if self.part is not None else ""
        return self.aux_name(aux_block) + suffix

    def take(self, tensor: Tensor) -> Tensor:
        """This linear's rows of an auxiliary tensor (all of it unless it is q, k or v)."""
        if self.part is None:
            return tensor
        if tensor.shape[0] % 3:
            raise PathwayError(
                f"{self.module_name} takes the {QKV_ROLES[self.part]} rows of the auxiliary's fused qkv, but its "
                f"{tuple(tensor.shape)} tensor has a number of rows that is not a multiple of 3.")
        return tensor.chunk(3, dim=0)[self.part]


def uses_canonical_names(config: PathwayConfig) -> bool:
    """Whether ``config`` names the four block linears the default way (timm names, blocks.N)."""
    return (not isinstance(config.layers, str) and set(config.layers) <= set(DEFAULT_LAYERS)
            and config.block_pattern == DEFAULT_BLOCK_PATTERN)


def hf_target_linears(target: nn.Module, config: PathwayConfig) -> Optional[list[HFTargetLinear]]:
    """The block linears of a Hugging Face target, or None when ``target`` is not one.

    Only used when ``config`` names layers the canonical way (``layers`` a subset of
    ``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ``mlp.fc2``); a hand-written ``layers`` /
    ``block_pattern`` keeps pairing by name.

    Raises:
        PathwayError: several encoders, or blocks with layers the four linears do not capture.
    """
    if not uses_canonical_names(config):
        return None
    weights = [f"{name}.weight" for name, module in target.named_modules()
               if isinstance(getattr(module, "weight", None), Tensor) or hasattr(module, "parametrizations")]
    matches = [m for m in find_hf_layouts(weights) if m.complete]
    if not matches:
        return None
    if len(matches) > 1:
        raise PathwayError(
            f"{type(target).__name__} holds several encoders ({'; '.join(m.describe() for m in matches)}). Attach "
            "pathways to one of them (e.g. add_pathways(clip_model.vision_model, aux)).")
    match = matches[0]
    reason = refusal(match, [n for n, _ in target.named_parameters()])
    if reason is not None or match.layout.heads_interleaved:
        why = reason or f"its fused {match.layout.linears['qkv']} orders q, k and v per head"
        raise PathwayError(
            f"{type(target).__name__} ({match.layout.name} layout) cannot take pathways exactly: {why}. Pass "
            "PathwayConfig(layers=..., block_pattern=...) naming the layers yourself.")
    wanted = set(config.layers)
    linears = []
    for block in sorted(match.blocks):
        for role, tail in match.layout.linears.items():
            canonical = ROLE_CANONICAL[role]
            if canonical in wanted:
                part = QKV_ROLES.index(role) if role in QKV_ROLES else None
                linears.append(HFTargetLinear(f"{match.block_prefix(block)}{tail}", block, canonical, part))
    return linears


def _refuse_save_pretrained(*args: Any, **kwargs: Any) -> None:
    raise PathwayError(
        "save_pretrained refused: this model still has m2pt pathways, whose weights from_pretrained would not "
        "find (it would load random linears in their place). Save the merged model: "
        "m2pt.merge_pathways(model).save_pretrained(folder) (same class, loads with from_pretrained); to keep "
        "training later, save the pathway state with m2pt.save_pathways(model, 'state.safetensors'). With "
        "transformers.Trainer, train with save_strategy='no' (or a callback calling m2pt.save_pathways) and "
        "save the merged model at the end.")


def guard_save_pretrained(model: nn.Module) -> None:
    """Make ``save_pretrained`` (and ``push_to_hub``, which calls it) refuse while pathways exist.

    Applies to ``model`` and to every module inside it that has ``save_pretrained`` and holds
    pathways (an HF backbone inside a wrapper model).
    """
    for module in model.modules():
        if callable(getattr(module, "save_pretrained", None)) and has_pathways(module):
            module.save_pretrained = _refuse_save_pretrained


def release_save_pretrained(model: nn.Module) -> None:
    """Undo :func:`guard_save_pretrained` (after merging)."""
    for module in model.modules():
        if module.__dict__.get("save_pretrained") is _refuse_save_pretrained:
            del module.__dict__["save_pretrained"]
