"""What a pathway model holds: which layers, how many trainable parameters, current λ."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .attach import unwrap_model
from .layer import BiasPathway, Pathway
from .module import iter_pathway_layers, original_tensor, weight_pathways


@dataclass
class LayerPathway:
    """One pathway of one layer."""

    layer: str
    aux_index: int
    aux_name: str
    scale_mean: float
    scale_abs_mean: float
    relative_delta: float
    """``‖λ W'‖ / ‖W‖``: how much the pathway currently changes the layer."""
    aux_trainable: bool


@dataclass
class PathwaySummary:
    """Counts and λ statistics of a model with pathways (``str()`` gives a table)."""

    layers: list[LayerPathway] = field(default_factory=list)
    num_layers: int = 0
    num_aux: int = 0
    params_total: int = 0
    params_trainable: int = 0
    params_aux: int = 0
    params_scale: int = 0

    def scale_stats(self) -> dict[str, float]:
        """Mean, min and max of |λ| over layers (0 when there are none)."""
        values = [p.scale_abs_mean for p in self.layers] or [0.0]
        return {"abs_mean": sum(values) / len(values), "abs_min": min(values), "abs_max": max(values)}

    def __str__(self) -> str:
        stats = self.scale_stats()
        lines = [
            f"pathways: {len(self.layers)} on {self.num_layers} layers from {self.num_aux} auxiliary model(s)",
            f"parameters: {self.params_total:,} total, {self.params_trainable:,} trainable, "
            f"{self.params_aux:,} auxiliary (W'), {self.params_scale:,} scales (λ)",
            f"|λ|: mean {stats['abs_mean']:.3g}, min {stats['abs_min']:.3g}, max {stats['abs_max']:.3g}",
            f"{'layer':<34} {'aux':>3} {'λ mean':>10} {'|λW′|/|W|':>10}",
        ]
        lines += [f"{p.layer:<34} {p.aux_index:>3} {p.scale_mean:>10.3g} {p.relative_delta:>10.3g}" for p in self.layers]
        return "\n".join(lines)


@torch.no_grad()
def pathway_summary(model: nn.Module) -> PathwaySummary:
    """Summarise the pathways of ``model`` (works on models without pathways too)."""
    model = unwrap_model(model)
    summary = PathwaySummary()
    auxes = set()
    for name, module in iter_pathway_layers(model):
        summary.num_layers += 1
        weight = original_tensor(module, "weight").float()
        for pathway in weight_pathways(module):
            auxes.add(pathway.aux_index)
            scale = pathway.scale.float()
            summary.layers.append(LayerPathway(
                layer=name, aux_index=pathway.aux_index, aux_name=pathway.aux_name,
                scale_mean=scale.mean().item(), scale_abs_mean=scale.abs().mean().item(),
                relative_delta=(pathway.delta().norm() / weight.norm().clamp_min(1e-12)).item(),
                aux_trainable=pathway.aux_weight.requires_grad,
            ))
    summary.num_aux = len(auxes)
    for module in model.modules():
        if isinstance(module, Pathway):
            summary.params_aux += module.aux_weight.numel()
            summary.params_scale += module.scale.numel()
        elif isinstance(module, BiasPathway):
            summary.params_aux += module.aux_bias.numel()
    for param in model.parameters():
        summary.params_total += param.numel()
        summary.params_trainable += param.numel() if param.requires_grad else 0
    return summary


def pathway_scales(model: nn.Module) -> dict[str, float]:
    """``{"<layer>[#aux]": mean λ}`` for logging λ over training."""
    out = {}
    for name, module in iter_pathway_layers(unwrap_model(model)):
        for pathway in weight_pathways(module):
            key = name if pathway.aux_index == 0 else f"{name}#{pathway.aux_index}"
            out[key] = pathway.scale.detach().float().mean().item()
    return out
