"""The pathway parametrization's own arithmetic and gradients."""

from __future__ import annotations

import pytest
import torch

from m2pt.pathway.layer import add_scaled


@pytest.mark.parametrize("scale_shape, tensor_shape", [
    ((), (6, 4)), ((6, 1), (6, 4)), ((4,), (6, 4)), ((1,), (6, 4)),
    ((6,), (6,)), ((1,), (6,)), ((), (6,)),  # a bias pathway: λ reshaped to 1-D
])
def test_add_scaled_gradients_match_autograd(scale_shape, tensor_shape):
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(tensor_shape, generator=generator, dtype=torch.float64, requires_grad=True)
    aux = torch.randn(tensor_shape, generator=generator, dtype=torch.float64, requires_grad=True)
    scale = torch.randn(scale_shape, generator=generator, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(add_scaled, (base, scale, aux))
    torch.testing.assert_close(add_scaled(base, scale, aux), base + scale * aux)


def test_add_scaled_skips_gradients_nobody_needs():
    base = torch.randn(3, 3, requires_grad=True)
    scale = torch.tensor(0.5)
    aux = torch.randn(3, 3)
    add_scaled(base, scale, aux).sum().backward()
    torch.testing.assert_close(base.grad, torch.ones(3, 3))
    assert scale.grad is None and aux.grad is None
