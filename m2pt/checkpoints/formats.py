"""Checkpoint layouts: read a file or state dict and convert it to this project's names.

The canonical names are timm's ViT names, which every m2pt model uses for its blocks
(``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``); tokenizer, norm and head
keys keep the names of their source, which are the names the m2pt models use too.

Supported layouts (see ``shared/CHECKPOINTS.md``):

* ``timm``: a bare timm ViT state dict.
* ``mae``: MAE image checkpoints, ``{'model': ...}``; decoder keys are dropped.
* ``audiomae``: like MAE with a one-channel ``patch_embed.proj``.
* ``videomae``: VideoMAE / VideoMAEv2; ``q_bias``, zeros and ``v_bias`` are folded into a
  fused ``attn.qkv.bias``; ``encoder.`` / ``backbone.`` / ``_orig_mod.`` prefixes are removed.
* ``pointmae``: Point-MAE; ``blocks.blocks.N`` becomes ``blocks.N`` and the ``module.`` /
  ``MAE_encoder.`` prefixes are removed; the ``encoder.*`` tokenizer keeps its name.
* ``bert``: Hugging Face BERT-style encoders; query, key and value are concatenated along
  the output dim into ``attn.qkv``, the other linears are renamed.
* ``m2pt``: files written by :func:`m2pt.checkpoints.save_model` (already canonical).

Where the blocks live decides what the encoder is: the longest chain of wrapper prefixes
(``module.``, ``backbone.``, ``encoder.``, ``_orig_mod.``, ``MAE_encoder.``, ``bert.``) in
front of the block keys is removed, and keys outside that prefix (decoders, masked-model
heads) are dropped. That keeps Point-MAE's ``encoder.first_conv`` tokenizer and BERT's
``encoder.layer.N`` intact while unwrapping VideoMAE's ``encoder.blocks.N``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Union

import torch
from torch import Tensor, nn

from ..io import PathLike, load_tensor_file, read_safetensors_metadata

CheckpointSource = Union[PathLike, Mapping[str, Any], nn.Module]

FORMATS: tuple[str, ...] = ("timm", "mae", "audiomae", "videomae", "pointmae", "bert", "m2pt")
WRAPPER_KEYS: tuple[str, ...] = ("model", "module", "base_model", "state_dict")
WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "backbone.", "encoder.", "_orig_mod.", "MAE_encoder.", "bert.")
BLOCK_LINEARS: tuple[str, ...] = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")

# Safetensors metadata key under which save_model stores its JSON config.
M2PT_METADATA_KEY = "m2pt"

_PREFIX_CHAIN = "((?:" + "|".join(re.escape(p) for p in WRAPPER_PREFIXES) + ")*)"
# Block-key patterns of the three key families, most specific first.
_FAMILY_PATTERNS: dict[str, re.Pattern[str]] = {
    "bert": re.compile(_PREFIX_CHAIN + r"encoder\.layer\.(\d+)\."),
    "pointmae": re.compile(_PREFIX_CHAIN + r"blocks\.blocks\.(\d+)\."),
    "timm": re.compile(_PREFIX_CHAIN + r"blocks\.(\d+)\."),
}
_FORMAT_FAMILY = {
    "timm": "timm", "mae": "timm", "audiomae": "timm", "videomae": "timm", "m2pt": "timm",
    "pointmae": "pointmae", "bert": "bert",
}
# Pretraining-only keys inside the encoder prefix (MAE / AudioMAE / Point-MAE decoders).
_DECODER_KEY = re.compile(r"(decoder[._]|mask_token$|encoder_to_decoder\.|MAE_decoder\.|increase_dim\.)")
_BERT_RENAMES = {
    "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}


class CheckpointError(ValueError):
    """A checkpoint cannot be read or converted; the message says what was found and why."""


@dataclass
class ConvertedCheckpoint:
    """A checkpoint in canonical (timm / m2pt) names.

    Attributes:
        state_dict: The encoder's tensors under canonical names.
        source_format: The layout it was read as (one of :data:`FORMATS`).
        prefix: The wrapper prefix removed from the encoder keys (``""`` when none).
        dropped: Source keys left out: decoders, masked-model heads, keys outside the encoder.
        metadata: Safetensors metadata of the file ({} otherwise).
        path: The file it came from (None for an in-memory state dict).
    """

    state_dict: dict[str, Tensor]
    source_format: str
    prefix: str = ""
    dropped: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    def source_key(self, canonical_key: str) -> str:
        """The name a canonical block key has in the source layout (for error messages)."""
        match = re.match(r"blocks\.(\d+)\.(.+)$", canonical_key)
        if match is None:
            return self.prefix + canonical_key
        block, rest = match.groups()
        family = _FORMAT_FAMILY[self.source_format]
        if family == "pointmae":
            return f"{self.prefix}blocks.blocks.{block}.{rest}"
        if family == "bert":
            layer, _, param = rest.rpartition(".")
            if layer == "attn.qkv":
                return f"{self.prefix}encoder.layer.{block}.attention.self.{{query,key,value}}.{param}"
            bert_layer = {v: k for k, v in _BERT_RENAMES.items()}.get(layer, layer)
            return f"{self.prefix}encoder.layer.{block}.{bert_layer}.{param}"
        return f"{self.prefix}blocks.{block}.{rest}"


def unwrap_state_dict(obj: Mapping[str, Any]) -> tuple[dict[str, Tensor], list[str]]:
    """Descend through ``model`` / ``module`` / ``base_model`` / ``state_dict`` wrappers.

    Returns:
        The tensors of the innermost state dict and the wrapper keys descended through.
    """
    wrappers: list[str] = []
    while True:
        inner = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        wrappers.append(inner)
        obj = obj[inner]
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointError(
            f"No tensors found in the checkpoint (after unwrapping {wrappers or 'nothing'}); "
            f"its keys are {_sample(list(obj))}. Expected a state dict, possibly wrapped in one of "
            f"{list(WRAPPER_KEYS)}.")
    return tensors, wrappers


def read_state_dict(source: CheckpointSource) -> tuple[dict[str, Tensor], list[str], dict[str, str], Path | None]:
    """Read a checkpoint file, state dict or module into flat tensors.

    Returns:
        ``(tensors, wrappers, safetensors_metadata, path)``.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a file that cannot be read safely, or that holds no tensors.
    """
    if isinstance(source, nn.Module):
        return dict(source.state_dict()), [], {}, None
    if isinstance(source, Mapping):
        tensors, wrappers = unwrap_state_dict(source)
        return tensors, wrappers, {}, None
    path = Path(source)
    obj = load_tensor_file(path)
    metadata = read_safetensors_metadata(path) if path.suffix == ".safetensors" else {}
    tensors, wrappers = unwrap_state_dict(obj)
    return tensors, wrappers, metadata, path


def _sample(keys: list[str], n: int = 8) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    return f"[{shown}{', ...' if len(keys) > n else ''}] ({len(keys)} keys)"


def _find_encoder_prefix(keys: list[str], family: str) -> str | None:
    """The wrapper prefix in front of the family's block keys (None if the family is absent)."""
    prefixes = {m.group(1) for k in keys if (m := _FAMILY_PATTERNS[family].match(k))}
    if not prefixes:
        return None
    if len(prefixes) > 1:
        raise CheckpointError(
            f"Block keys appear under several prefixes {sorted(prefixes)}; the checkpoint holds more "
            "than one encoder. Select one yourself, e.g. {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}.")
    return prefixes.pop()


def _fold_qv_bias(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """VideoMAE: ``attn.q_bias`` + zeros + ``attn.v_bias`` -> ``attn.qkv.bias``."""
    out = dict(state_dict)
    for key in [k for k in state_dict if k.endswith(".attn.q_bias")]:
        base = key[: -len("q_bias")]
        v_key = base + "v_bias"
        if v_key not in state_dict:
            raise CheckpointError(f"{key!r} has no matching {v_key!r}: cannot build the fused qkv bias.")
        q_bias, v_bias = out.pop(key), out.pop(v_key)
        out[base + "qkv.bias"] = torch.cat([q_bias, torch.zeros_like(v_bias), v_bias])
    return out


def _convert_timm(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    return _fold_qv_bias(state_dict)


def _convert_pointmae(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    return {re.sub(r"^blocks\.blocks\.(\d+)\.", r"blocks.\1.", k): v for k, v in state_dict.items()}


def _convert_bert(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    qkv_parts: dict[tuple[str, str], dict[str, Tensor]] = {}
    for key, value in state_dict.items():
        match = re.match(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$", key)
        if match is None:
            out[key] = value
            continue
        block, layer, param = match.groups()
        if layer.startswith("attention.self.") and layer.rsplit(".", 1)[-1] in ("query", "key", "value"):
            qkv_parts.setdefault((block, param), {})[layer.rsplit(".", 1)[-1]] = value
        elif layer in _BERT_RENAMES:
            out[f"blocks.{block}.{_BERT_RENAMES[layer]}.{param}"] = value
        else:
            out[key] = value
    for (block, param), parts in sorted(qkv_parts.items()):
        absent = [p for p in ("query", "key", "value") if p not in parts]
        if absent:
            raise CheckpointError(
                f"BERT layer {block} has no attention.self.{absent[0]}.{param} "
                f"(expected key 'encoder.layer.{block}.attention.self.{absent[0]}.{param}'); "
                "query, key and value are all needed to build the fused qkv.")
        out[f"blocks.{block}.attn.qkv.{param}"] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
    return out


_CONVERTERS: dict[str, Callable[[dict[str, Tensor]], dict[str, Tensor]]] = {
    "timm": _convert_timm, "pointmae": _convert_pointmae, "bert": _convert_bert,
}


def _timm_family_format(
        state_dict: Mapping[str, Tensor], wrappers: list[str], metadata: Mapping[str, str], had_decoder: bool) -> str:
    if M2PT_METADATA_KEY in metadata:
        return "m2pt"
    patch = state_dict.get("patch_embed.proj.weight")
    if any(k.endswith(".attn.q_bias") for k in state_dict) or (patch is not None and patch.dim() == 5):
        return "videomae"
    if patch is not None and patch.dim() == 4 and patch.shape[1] == 1:
        return "audiomae"
    if had_decoder or "model" in wrappers:
        return "mae"
    return "timm"


def detect_family(keys: list[str]) -> str | None:
    """``"bert"``, ``"pointmae"`` or ``"timm"``: whose block keys the checkpoint holds (None: none)."""
    for family, pattern in _FAMILY_PATTERNS.items():
        if any(pattern.match(k) for k in keys):
            return family
    return None


def convert_checkpoint(source: CheckpointSource, format: str = "auto") -> ConvertedCheckpoint:
    """Read a checkpoint and convert it to canonical names.

    Args:
        source: A ``.safetensors`` / ``.pth`` / ``.bin`` path, a (possibly wrapped) state
            dict, or a module whose ``state_dict()`` is used.
        format: ``"auto"`` to detect the layout from the keys, or one of :data:`FORMATS`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError (:class:`CheckpointError`): unknown layout, a forced format whose keys are
            absent, an unmerged pathway model, or a file that cannot be read safely.
    """
    if format != "auto" and format not in FORMATS:
        raise CheckpointError(f"Unknown checkpoint format {format!r}; choose 'auto' or one of {list(FORMATS)}.")
    tensors, wrappers, metadata, path = read_state_dict(source)
    keys = list(tensors)
    where = f" in {path}" if path is not None else ""
    if any(".parametrizations." in k for k in keys):
        raise CheckpointError(
            f"The checkpoint{where} holds unmerged pathways (keys like "
            f"{next(k for k in keys if '.parametrizations.' in k)!r}). Call m2pt.merge_pathways(model) "
            "and use the merged model's state_dict.")

    detected = detect_family(keys)
    family = detected if format == "auto" else _FORMAT_FAMILY[format]
    prefix = _find_encoder_prefix(keys, family) if family is not None else None
    if prefix is None:
        found = f"it looks like the {detected!r} layout" if detected else "no known block keys were found"
        wanted = f"the {format!r} layout was requested but " if format != "auto" else "unknown checkpoint layout: "
        raise CheckpointError(
            f"{wanted}{found}{where}. Keys found: {_sample(keys)}. Supported layouts: "
            "timm / mae / audiomae / videomae ('blocks.N.attn.qkv...'), pointmae ('blocks.blocks.N...'), "
            "bert ('encoder.layer.N.attention.self.query...'), m2pt (files from m2pt.checkpoints.save_model); "
            "optionally wrapped in {'model' | 'module' | 'base_model' | 'state_dict': ...} and prefixed by "
            f"{' / '.join(WRAPPER_PREFIXES)}.")

    encoder: dict[str, Tensor] = {}
    dropped: list[str] = []
    for key, value in tensors.items():
        inner = key[len(prefix):] if key.startswith(prefix) else None
        if inner is None or _DECODER_KEY.match(inner):
            dropped.append(key)
        else:
            encoder[inner] = value
    state_dict = _CONVERTERS[family](encoder)
    if format == "auto":
        format = family if family != "timm" else _timm_family_format(state_dict, wrappers, metadata, bool(dropped))
    return ConvertedCheckpoint(state_dict, format, prefix, dropped, metadata, path)


def read_m2pt_metadata(metadata: Mapping[str, str]) -> dict[str, Any]:
    """The config dict :func:`m2pt.checkpoints.save_model` stored in safetensors metadata ({} if none)."""
    raw = metadata.get(M2PT_METADATA_KEY)
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"The m2pt metadata of this safetensors file is not valid JSON: {exc}") from exc
    return value if isinstance(value, dict) else {}
