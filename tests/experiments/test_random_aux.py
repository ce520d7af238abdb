"""The random control: same shapes, same per-matrix std, nothing learned, loadable as an auxiliary."""

from __future__ import annotations

import pytest
import torch

from m2pt.experiments.random_aux import std_matched_random, write_random_auxiliary


def test_std_matched_per_matrix():
    torch.manual_seed(0)
    state = {"blocks.0.attn.qkv.weight": torch.randn(24, 8) * 0.3 + 0.1, "blocks.0.mlp.fc1.weight": torch.randn(16, 8) * 2}
    out = std_matched_random(state, seed=1)
    for key, source in state.items():
        assert out[key].shape == source.shape and out[key].dtype == source.dtype
        assert torch.isclose(out[key].std(), source.std(), rtol=1e-5)
        assert abs(out[key].mean().item()) < 1e-5
        assert torch.corrcoef(torch.stack([out[key].flatten(), source.flatten()]))[0, 1].abs() < 0.5
    again = std_matched_random(state, seed=1)
    other = std_matched_random(state, seed=2)
    assert all(torch.equal(out[k], again[k]) for k in state)
    assert not torch.equal(out["blocks.0.mlp.fc1.weight"], other["blocks.0.mlp.fc1.weight"])


def test_written_file_loads_as_auxiliary(tmp_path):
    from m2pt import create_model, load_auxiliary, save_model

    model = create_model("audio", "tiny", num_classes=0, embed_dim=32, depth=2, num_heads=2)
    source = save_model(model, tmp_path / "aux.safetensors")
    path = write_random_auxiliary(source, tmp_path / "random.safetensors", seed=3)
    random_aux, pretrained = load_auxiliary(str(path)).state_dict(), load_auxiliary(str(source)).state_dict()
    assert set(random_aux) == set(pretrained)
    for key in pretrained:
        if pretrained[key].numel() > 1 and pretrained[key].std() > 0:
            assert torch.isclose(random_aux[key].std(), pretrained[key].std(), rtol=1e-4), key
            assert not torch.equal(random_aux[key], pretrained[key])


def test_permuted_control_keeps_values_and_spectrum_but_not_alignment():
    from m2pt.experiments.random_aux import permuted

    torch.manual_seed(0)
    state = {"blocks.0.attn.qkv.weight": torch.randn(24, 8), "blocks.0.attn.qkv.bias": torch.randn(24),
             "blocks.0.mlp.fc1.weight": torch.randn(16, 8) @ torch.randn(8, 8)}
    out = permuted(state, seed=1)
    assert set(out) == set(state)
    for key, source in state.items():
        assert out[key].shape == source.shape and out[key].dtype == source.dtype
        assert torch.equal(out[key].flatten().sort().values, source.flatten().sort().values), key
        assert not torch.equal(out[key], source), key
        if source.ndim == 2:
            assert torch.allclose(torch.linalg.svdvals(out[key]), torch.linalg.svdvals(source), atol=1e-5)
            # alignment destroyed: the matrix seen as a map differs (not a rescaling or a sign flip)
            assert torch.corrcoef(torch.stack([out[key].flatten(), source.flatten()]))[0, 1].abs() < 0.5
            # each row is a whole row of the source, its entries reordered
            for out_row in out[key]:
                assert any(torch.equal(out_row.sort().values, r.sort().values) for r in source)
    weight, bias = state["blocks.0.attn.qkv.weight"], state["blocks.0.attn.qkv.bias"]
    row = int(torch.nonzero(torch.isin(out["blocks.0.attn.qkv.weight"][:, 0], weight)).flatten()[0])
    source_row = int(torch.nonzero((weight == out["blocks.0.attn.qkv.weight"][row, 0]).any(dim=1))[0])
    assert out["blocks.0.attn.qkv.bias"][row] == bias[source_row]  # a bias follows its weight's rows
    again, other = permuted(state, seed=1), permuted(state, seed=2)
    assert all(torch.equal(out[k], again[k]) for k in state)
    assert not torch.equal(out["blocks.0.mlp.fc1.weight"], other["blocks.0.mlp.fc1.weight"])


def test_permuted_file_loads_as_auxiliary_with_same_spectrum(tmp_path):
    from m2pt import create_model, load_auxiliary, save_model
    from m2pt.experiments.random_aux import write_control_auxiliary

    model = create_model("audio", "tiny", num_classes=0, embed_dim=32, depth=2, num_heads=2)
    source = save_model(model, tmp_path / "aux.safetensors")
    path = write_control_auxiliary(source, tmp_path / "permuted.safetensors", seed=3, kind="permuted")
    controlled, pretrained = load_auxiliary(str(path)).state_dict(), load_auxiliary(str(source)).state_dict()
    assert set(controlled) == set(pretrained)
    matrices = [k for k in pretrained if pretrained[k].ndim == 2]
    assert matrices
    for key in matrices:
        assert torch.allclose(torch.linalg.svdvals(controlled[key]), torch.linalg.svdvals(pretrained[key]), atol=1e-5)
        assert not torch.equal(controlled[key], pretrained[key])
    with pytest.raises(ValueError, match="unknown control kind 'shuffled'"):
        write_control_auxiliary(source, tmp_path / "x.safetensors", seed=3, kind="shuffled")
    assert not (tmp_path / "x.safetensors").exists()
