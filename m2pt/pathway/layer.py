"""The cross-modal re-parameterization of one tensor: ``θ + λ θ'``.

A pathway is a ``torch.nn.utils.parametrize`` parametrization, so every read of the
parameter (``module.weight``), by the module's own forward or by code that reads the weight
directly (VideoMAE-style ``F.linear(x, self.qkv.weight, ...)``), sees the combined tensor.
Forward and backward cost one weight-sized multiply-add per layer, not a second branch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _AddScaled(torch.autograd.Function):
    """``base + scale * aux`` as one kernel forward and at most one kernel per input backward.

    The autograd graph has one node per pathway instead of a multiply and an add, and the
    gradient of a scalar λ is a single dot product, without a weight-sized temporary.
    """

    @staticmethod
    def forward(ctx, base: Tensor, scale: Tensor, aux: Tensor) -> Tensor:
        ctx.save_for_backward(scale, aux)
        return torch.addcmul(base, scale, aux)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        scale, aux = ctx.saved_tensors
        grad_base = grad if ctx.needs_input_grad[0] else None
        grad_scale = grad_aux = None
        if ctx.needs_input_grad[1]:
            if scale.numel() == 1:
                grad_scale = torch.dot(grad.reshape(-1), aux.reshape(-1).to(grad.dtype)).reshape(scale.shape)
            else:
                # λ broadcasts against W' (per-channel [out, 1, ...], or [out] for a bias): sum the
                # product over exactly the broadcast dimensions, whatever λ's shape.
                grad_scale = (grad * aux).sum_to_size(scale.shape)
            grad_scale = grad_scale.to(scale.dtype)
        if ctx.needs_input_grad[2]:
            grad_aux = (grad * scale).to(aux.dtype)
        return grad_base, grad_scale, grad_aux


def add_scaled(base: Tensor, scale: Tensor, aux: Tensor) -> Tensor:
    """``base + scale * aux`` with the gradients of all three (see :class:`_AddScaled`)."""
    return _AddScaled.apply(base, scale, aux)


def _format_scale(scale: Tensor) -> str:
    value = scale.detach().float()
    if value.numel() == 1:
        return f"{value.item():.3g}"
    return f"mean |λ|={value.abs().mean().item():.3g} over {value.numel()} channels"


class Pathway(nn.Module):
    """Parametrization ``W -> W + λ W'`` with a learnable cross-modal scale λ.

    Args:
        aux_weight: ``W'``, the same-position weight of the auxiliary model (copied by the
            caller into the target's dtype and device).
        scale_init: Initial λ.
        per_channel: One λ per output channel (dim 0) instead of one scalar.
        train_scale: Whether λ receives gradients.
        train_aux: Whether ``W'`` receives gradients.
        aux_name: Where ``W'`` came from (for printing and saving).
        aux_index: Which auxiliary model (0 for the first) this pathway comes from.
    """

    def __init__(
        self,
        aux_weight: Tensor,
        scale_init: float = 0.0,
        per_channel: bool = False,
        train_scale: bool = True,
        train_aux: bool = True,
        aux_name: str = "",
        aux_index: int = 0,
    ) -> None:
        super().__init__()
        scale_shape = (aux_weight.shape[0],) + (1,) * (aux_weight.dim() - 1) if per_channel else ()
        self.aux_weight = nn.Parameter(aux_weight, requires_grad=train_aux)
        self.scale = nn.Parameter(
            torch.full(scale_shape, float(scale_init), dtype=aux_weight.dtype, device=aux_weight.device),
            requires_grad=train_scale,
        )
        self.aux_name = aux_name
        self.aux_index = aux_index

    @property
    def per_channel(self) -> bool:
        return self.scale.dim() > 0

    def forward(self, weight: Tensor) -> Tensor:
        return add_scaled(weight, self.scale, self.aux_weight)

    def delta(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """``λ W'`` computed in ``dtype`` (float32 for merging), without autograd."""
        with torch.no_grad():
            return self.scale.to(dtype) * self.aux_weight.to(dtype)

    def extra_repr(self) -> str:
        flags = "trainable" if self.aux_weight.requires_grad else "frozen"
        scale_flag = "" if self.scale.requires_grad else " (fixed)"
        return (
            f"aux={self.aux_name!r}, aux_weight={tuple(self.aux_weight.shape)} {flags}, "
            f"λ={_format_scale(self.scale)}{scale_flag}"
        )


class BiasPathway(nn.Module):
    """Parametrization ``b -> b + λ b'`` sharing λ with the weight pathway of the same layer.

    Args:
        aux_bias: ``b'``, the auxiliary bias.
        weight_pathway: The layer's weight :class:`Pathway`, whose λ is reused.
        train_aux: Whether ``b'`` receives gradients.
    """

    def __init__(self, aux_bias: Tensor, weight_pathway: Pathway, train_aux: bool = True) -> None:
        super().__init__()
        self.aux_bias = nn.Parameter(aux_bias, requires_grad=train_aux)
        # A tuple keeps the weight pathway out of this module's children: λ is registered
        # (and saved) once, under the weight's parametrization.
        self._weight_pathway = (weight_pathway,)

    @property
    def scale(self) -> Tensor:
        return self._weight_pathway[0].scale.reshape(-1)

    @property
    def aux_index(self) -> int:
        return self._weight_pathway[0].aux_index

    def forward(self, bias: Tensor) -> Tensor:
        return add_scaled(bias, self.scale, self.aux_bias)

    def delta(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """``λ b'`` computed in ``dtype``, without autograd."""
        with torch.no_grad():
            return self.scale.to(dtype) * self.aux_bias.to(dtype)

    def extra_repr(self) -> str:
        return f"aux_bias={tuple(self.aux_bias.shape)}, λ shared with the weight pathway"


class _SplitLinear(torch.autograd.Function):
    """``x W^T + Σ_k λ_k (x W'_k^T)`` under autocast: low-precision matmuls, float32 sum.

    The forward keeps each pathway term out of the rounded weight (one matmul per auxiliary
    model more than a plain layer). The backward needs no extra matmul: ``dx`` uses the merged
    weight ``W + Σ λ_k W'_k`` rounded once, and ``dW_eff = dy^T x`` gives ``dW = dW_eff``,
    ``dW'_k = λ_k dW_eff`` and ``dλ_k = <dW_eff, W'_k>`` (per output channel for a per-channel λ).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, *pairs: Tensor) -> Tensor:
        device_type = x.device.type
        dtype = torch.get_autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            low_x = x.to(dtype)
            out = F.linear(low_x, weight.to(dtype)).float()
            for scale, aux in zip(pairs[0::2], pairs[1::2]):
                out += scale.float().reshape(-1) * F.linear(low_x, aux.to(dtype)).float()
        ctx.save_for_backward(low_x, weight, *pairs)
        ctx.x_dtype = x.dtype
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        low_x, weight, *pairs = ctx.saved_tensors
        scales, auxes = pairs[0::2], pairs[1::2]
        needs = ctx.needs_input_grad
        grad_x = grad_weight = None
        grad_pairs: list[Tensor | None] = [None] * len(pairs)
        with torch.autocast(grad.device.type, enabled=False):
            low_grad = grad.to(low_x.dtype)
            if needs[0]:
                merged = weight.detach().float().clone()
                for scale, aux in zip(scales, auxes):
                    merged.addcmul_(scale.detach().float(), aux.detach().float())
                grad_x = F.linear(low_grad, merged.to(low_x.dtype).t()).to(ctx.x_dtype)
            if any(needs[1:]):
                grad_eff = (low_grad.reshape(-1, low_grad.shape[-1]).t()
                            @ low_x.reshape(-1, low_x.shape[-1])).float()
                if needs[1]:
                    grad_weight = grad_eff.to(weight.dtype)
                for k, (scale, aux) in enumerate(zip(scales, auxes)):
                    if needs[2 + 2 * k]:
                        if scale.dim() == 0:
                            grad_pairs[2 * k] = torch.dot(grad_eff.reshape(-1), aux.float().reshape(-1)).to(scale.dtype)
                        else:
                            grad_pairs[2 * k] = (grad_eff * aux.float()).sum(dim=1, keepdim=True).to(scale.dtype)
                    if needs[3 + 2 * k]:
                        grad_pairs[2 * k + 1] = (grad_eff * scale.float()).to(aux.dtype)
        return (grad_x, grad_weight, *grad_pairs)


def split_linear_forward(module: nn.Module, x: Tensor) -> Tensor:
    """``F.linear`` of a pathway ``nn.Linear`` that keeps ``λ W' x`` out of the low-precision weight.

    Under autocast, ``F.linear(x, W + λW')`` rounds the merged weight to bf16/fp16 first: at
    |λ| ≈ 1e-3, ``λW'`` is below half a bf16 ulp of ``W`` and most of it is lost. Here ``W x``
    and each ``W'_k x`` are separate low-precision matmuls whose outputs are scaled by
    ``λ_k`` and summed in float32 (returned in float32), so the pathway term is as precise as
    any matmul output (:class:`_SplitLinear`: one extra matmul per auxiliary model in the
    forward, none in the backward). Only used while autocast is on; otherwise this is
    ``F.linear(x, module.weight, module.bias)``.
    """
    if not torch.is_autocast_enabled(x.device.type):
        return F.linear(x, module.weight, module.bias)
    weights = module.parametrizations["weight"]
    pairs = [t for pathway in weights for t in (pathway.scale, pathway.aux_weight)]
    out = _SplitLinear.apply(x, weights.original, *pairs)
    if module.bias is not None:
        out = out + module.bias.float()
    return out
