"""Every target modality × every other auxiliary modality: attach, train a step, merge, compare."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import m2pt
from m2pt.pathway import Pathway

from ..models.helpers import random_input, tiny_model

MODALITIES = ("image", "video", "point", "audio")
PAIRS = [(t, a) for t, a in itertools.product(MODALITIES, MODALITIES) if t != a]


def test_there_are_twelve_pairs():
    assert len(PAIRS) == 12


@pytest.mark.parametrize("target_modality,aux_modality", PAIRS)
def test_pair_trains_and_merges(target_modality, aux_modality):
    torch.manual_seed(0)
    target = tiny_model(target_modality)
    aux = tiny_model(aux_modality, num_classes=3)
    aux_has_qkv_bias = aux.blocks[0].attn.qkv.bias is not None
    model = m2pt.add_pathways(target, aux)
    assert m2pt.pathway_summary(model).num_layers == 8

    x = random_input(model, batch=4)
    optimizer = torch.optim.AdamW(m2pt.param_groups(model), lr=1e-3)
    loss = F.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    optimizer.step()
    scales = [m.scale for m in model.modules() if isinstance(m, Pathway)]
    assert all(s.item() != 0.0 for s in scales), "every λ must have learned"

    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for s in scales:
            s.copy_(torch.rand((), generator=generator) * 0.5 + 0.1)
    model.eval()
    with torch.no_grad():
        unmerged = model(x)
        merged_model = m2pt.merge_pathways(model)
        torch.testing.assert_close(merged_model(x), unmerged, atol=1e-5, rtol=0)
    fresh = tiny_model(target_modality)
    fresh.load_state_dict(merged_model.state_dict(), strict=True)
    assert (aux.blocks[0].attn.qkv.bias is not None) == aux_has_qkv_bias  # the auxiliary is only read
