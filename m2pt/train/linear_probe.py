"""The linear-probe protocol (MAE's ``main_linprobe.py``), used by the paper's "fix acc" setting.

Only the classifier trains, behind a BatchNorm without affine parameters; with pathways, the
scales λ train too (and nothing else: W, W', norms and embeddings are frozen). After training
the BatchNorm (in eval mode an affine map) is folded into the classifier, so the saved model
has the original architecture.
"""

from __future__ import annotations

import torch
from torch import nn

from m2pt.pathway.module import iter_pathway_layers, weight_pathways


class LinearProbeError(ValueError):
    """The model cannot be linear-probed as built."""


def prepare_linear_probe(model: nn.Module) -> None:
    """Freeze everything but the classifier and the pathway scales; put a BatchNorm before the classifier.

    The classifier weight is re-initialised from a truncated normal of std 0.01 (as MAE does).
    Scales keep their own ``requires_grad`` (``PathwayConfig.train_scale``).

    Raises:
        LinearProbeError: ``model.head`` is not one ``nn.Linear``.
    """
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise LinearProbeError(f"linear_probe needs a model whose classifier 'head' is one nn.Linear, "
                               f"got {type(head).__name__}")
    scales = [pathway.scale for _, layer in iter_pathway_layers(model) for pathway in weight_pathways(layer)]
    trains_scale = [scale.requires_grad for scale in scales]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for scale, trains in zip(scales, trains_scale):
        scale.requires_grad_(trains)
    nn.init.trunc_normal_(head.weight, std=0.01)
    norm = nn.BatchNorm1d(head.in_features, affine=False, eps=1e-6).to(device=head.weight.device)
    model.head = nn.Sequential(norm, head)
    for parameter in model.head.parameters():
        parameter.requires_grad_(True)


@torch.no_grad()
def fold_probe_head(model: nn.Module) -> None:
    """Replace ``BatchNorm1d -> Linear`` in ``model.head`` by one ``nn.Linear`` with the same eval-mode output."""
    head = model.head
    if not (isinstance(head, nn.Sequential) and len(head) == 2 and isinstance(head[0], nn.BatchNorm1d)
            and isinstance(head[1], nn.Linear)):
        raise LinearProbeError(f"expected a BatchNorm1d -> Linear probe head, got {head}")
    norm, linear = head
    inv_std = (norm.running_var.double() + norm.eps).rsqrt()
    weight = linear.weight.double() * inv_std
    bias = linear.bias.double() - weight @ norm.running_mean.double()
    folded = nn.Linear(linear.in_features, linear.out_features, device=linear.weight.device,
                       dtype=linear.weight.dtype)
    folded.weight.copy_(weight.to(linear.weight.dtype))
    folded.bias.copy_(bias.to(linear.weight.dtype))
    folded.requires_grad_(linear.weight.requires_grad)
    model.head = folded
