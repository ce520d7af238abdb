"""Hugging Face ``transformers`` checkpoints: read them and convert their block linears.

Reads what ``save_pretrained`` writes (a folder with ``config.json`` and ``model.safetensors``,
sharded ``model-0000N-of-0000M.safetensors`` with their index, or ``pytorch_model.bin``) and
live ``PreTrainedModel`` instances, and converts the layouts of
:mod:`m2pt.checkpoints.hf_layouts` to timm's block names (``blocks.N.attn.qkv``, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..io import load_tensor_file
from .errors import CheckpointError
from .hf_layouts import QKV_ROLES, HFMatch

# Weight files of a save_pretrained folder, in the order transformers prefers them.
HF_WEIGHT_FILES: tuple[str, ...] = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)


def read_hf_folder(folder: Path) -> tuple[dict[str, Any], Path]:
    """The tensors of a ``save_pretrained`` folder (all shards) and the file they came from.

    Raises:
        FileNotFoundError: the folder holds none of :data:`HF_WEIGHT_FILES`.
    """
    for name in HF_WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return load_tensor_file(path), path
        try:
            weight_map = json.loads(path.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path} is not a transformers shard index (no 'weight_map'): {exc}") from exc
        tensors: dict[str, Any] = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(load_tensor_file(folder / shard))
        return tensors, path
    present = sorted(p.name for p in folder.iterdir())[:12]
    raise FileNotFoundError(
        f"{folder} is a folder but holds no Hugging Face weights ({', '.join(HF_WEIGHT_FILES)}); it has {present}. "
        "Pass the weight file itself, or the folder written by model.save_pretrained(folder).")


def read_hf_config(source: Any, path: Path | None) -> dict[str, Any]:
    """The ``transformers`` config of a live model, or ``config.json`` beside / inside ``path`` ({} if none)."""
    config = getattr(source, "config", None)
    if isinstance(source, nn.Module) and hasattr(config, "to_dict"):
        return dict(config.to_dict())
    if path is None:
        return {}
    config_path = (path if path.is_dir() else path.parent) / "config.json"
    if not config_path.is_file():
        return {}
    try:
        value = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_path} is not valid JSON: {exc}") from exc
    return value if isinstance(value, dict) else {}


def _deinterleave_heads(weight: Tensor, num_heads: int) -> Tensor:
    """DeBERTa's per-head ``[q_h; k_h; v_h]`` rows -> ``[q; k; v]``."""
    rows, width = weight.shape
    if rows % (3 * num_heads):
        raise CheckpointError(
            f"A per-head fused qkv of {rows} rows cannot hold q, k and v of {num_heads} heads (rows must be a "
            "multiple of 3 x heads); num_heads does not belong to these weights.")
    return weight.reshape(num_heads, 3, rows // (3 * num_heads), width).transpose(0, 1).reshape(rows, width)


def _fused_qkv(
        encoder: Mapping[str, Tensor], match: HFMatch, block: int, num_heads: int | None,
) -> tuple[Tensor, Tensor | None, set[str]]:
    """``(weight, bias, consumed keys)`` of one block's fused qkv in ``[q; k; v]`` order."""
    layout, start = match.layout, f"{match.stack}.{block}."
    used: set[str] = set()

    def take(key: str) -> Tensor | None:
        if key in encoder:
            used.add(key)
            return encoder[key]
        return None

    parts: list[Tensor | None] = [None, None, None]
    if "qkv" in layout.linears:
        tail = layout.linears["qkv"]
        weight = take(f"{start}{tail}.weight")
        if layout.heads_interleaved:
            if num_heads is None:
                raise CheckpointError(
                    f"{layout.name}: '{match.prefix}{start}{tail}.weight' interleaves q, k and v per head; the "
                    "number of heads is needed to split it exactly. Load the save_pretrained folder (its "
                    "config.json says num_attention_heads) or pass num_heads=.")
            weight = _deinterleave_heads(weight, num_heads)
        if f"{start}{tail}.bias" in encoder:
            raise CheckpointError(
                f"{layout.name}: '{match.prefix}{start}{tail}.bias' is unexpected (this layout keeps its q / v "
                "biases apart); the checkpoint does not follow the layout it resembles.")
    else:
        weights = [take(f"{start}{layout.linears[r]}.weight") for r in QKV_ROLES]
        shapes = [tuple(w.shape) for w in weights]
        if len(set(shapes)) != 1:
            found = ", ".join(f"{match.prefix}{start}{layout.linears[r]}.weight {shape}"
                              for r, shape in zip(QKV_ROLES, shapes))
            raise CheckpointError(
                f"{layout.name}: query, key and value have different shapes ({found}), as in grouped-query "
                "attention; a fused qkv of three equal parts cannot hold them exactly.")
        weight = torch.cat(weights, dim=0)
        parts = [take(f"{start}{layout.linears[r]}.bias") for r in QKV_ROLES]
    for index, role in enumerate(QKV_ROLES):
        if role in layout.split_biases:
            split = take(f"{start}{layout.split_biases[role]}")
            if split is not None:
                parts[index] = split
    if all(p is None for p in parts):
        return weight, None, used
    rows = weight.shape[0] // 3
    like = next(p for p in parts if p is not None)
    bias = torch.cat([p if p is not None else torch.zeros(rows, dtype=like.dtype, device=like.device) for p in parts])
    return weight, bias, used


def convert_hf_encoder(encoder: Mapping[str, Tensor], match: HFMatch, num_heads: int | None) -> dict[str, Tensor]:
    """Rename one HF encoder (keys without ``match.prefix``) to ``blocks.N.{attn.qkv,attn.proj,mlp.fc1,mlp.fc2}``.

    Keys that are not block linears (norms, embeddings, layer scales) keep their names.
    """
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    layout = match.layout
    for block in sorted(match.blocks):
        start = f"{match.stack}.{block}."
        weight, bias, consumed = _fused_qkv(encoder, match, block, num_heads)
        used |= consumed
        out[f"blocks.{block}.attn.qkv.weight"] = weight
        if bias is not None:
            out[f"blocks.{block}.attn.qkv.bias"] = bias
        for role, canonical in (("proj", "attn.proj"), ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2")):
            for param in ("weight", "bias"):
                key = f"{start}{layout.linears[role]}.{param}"
                if key in encoder:
                    out[f"blocks.{block}.{canonical}.{param}"] = encoder[key]
                    used.add(key)
    out.update({k: v for k, v in encoder.items() if k not in used})
    return out
