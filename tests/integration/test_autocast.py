"""Every modality model with pathways trains under bf16 autocast (CPU autocast mirrors CUDA's dtypes)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import m2pt

from ..models.helpers import random_input, tiny_model


@pytest.mark.parametrize("modality", ["image", "video", "point", "audio"])
def test_pathway_model_trains_under_bf16_autocast(modality):
    torch.manual_seed(0)
    model = m2pt.add_pathways(tiny_model(modality), tiny_model("image" if modality != "image" else "audio"),
                              scale_init=1e-2)
    x = random_input(model, batch=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x), torch.arange(4) % 5)
    loss.backward()
    scales = [m.scale for m in model.modules() if isinstance(m, m2pt.pathway.Pathway)]
    assert torch.isfinite(loss) and all(s.grad is not None and torch.isfinite(s.grad) for s in scales)
    assert all(s.dtype == torch.float32 for s in scales)
