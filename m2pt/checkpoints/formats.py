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
* Hugging Face ``transformers`` encoders (:mod:`m2pt.checkpoints.hf_layouts`): ``bert``
  (BERT, RoBERTa, XLM-R, ELECTRA), ``deberta``, ``deberta-v2``, ``hf-vit`` (ViT, DeiT, BEiT,
  ViTMAE, VideoMAE, AST; hub and transformers-5 in-memory names), ``dinov2``, ``clip`` (vision
  and text towers) and ``wav2vec2`` (Wav2Vec2, HuBERT, WavLM), under any task-head prefix;
  query, key and value are concatenated along the output dim into ``attn.qkv``.
* ``m2pt``: files written by :func:`m2pt.checkpoints.save_model` (already canonical).

For the timm-style layouts, where the blocks live decides what the encoder is: the longest chain of wrapper prefixes
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
from .errors import CheckpointError
from .hf import convert_hf_encoder, read_hf_config, read_hf_folder
from .hf_layouts import HF_FORMATS, HF_LAYOUTS, HFMatch, find_hf_layouts, partial_reason, refusal

CheckpointSource = Union[PathLike, Mapping[str, Any], nn.Module]

FORMATS: tuple[str, ...] = ("timm", "mae", "audiomae", "videomae", "pointmae", "m2pt") + HF_FORMATS
WRAPPER_KEYS: tuple[str, ...] = ("model", "module", "base_model", "state_dict")
WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "backbone.", "encoder.", "_orig_mod.", "MAE_encoder.", "bert.")
BLOCK_LINEARS: tuple[str, ...] = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")

# Safetensors metadata key under which save_model stores its JSON config.
M2PT_METADATA_KEY = "m2pt"
# A tensor of an m2pt pathway (the target's W under it, W', λ, b'). weight_norm's two-tensor
# parametrization (``parametrizations.weight.original0`` / ``original1``, in every Wav2Vec2 /
# HuBERT / WavLM checkpoint) does not match.
PATHWAY_KEY = re.compile(r"\.parametrizations\.[^.]+\.(?:original|\d+\.(?:aux_weight|aux_bias|scale))$")

_PREFIX_CHAIN = "((?:" + "|".join(re.escape(p) for p in WRAPPER_PREFIXES) + ")*)"
# Block-key patterns of the three key families, most specific first.
_FAMILY_PATTERNS: dict[str, re.Pattern[str]] = {
    "pointmae": re.compile(_PREFIX_CHAIN + r"blocks\.blocks\.(\d+)\."),
    "timm": re.compile(_PREFIX_CHAIN + r"blocks\.(\d+)\."),
}
_FORMAT_FAMILY = {
    "timm": "timm", "mae": "timm", "audiomae": "timm", "videomae": "timm", "m2pt": "timm",
    "pointmae": "pointmae",
}
# Pretraining-only keys inside the encoder prefix (MAE / AudioMAE / Point-MAE decoders).
_DECODER_KEY = re.compile(r"(decoder[._]|mask_token$|encoder_to_decoder\.|MAE_decoder\.|increase_dim\.)")


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
        config: The ``transformers`` config of a Hugging Face checkpoint ({} otherwise).
        hf_match: The Hugging Face layout it was read as (None for the other layouts).
    """

    state_dict: dict[str, Tensor]
    source_format: str
    prefix: str = ""
    dropped: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    hf_match: HFMatch | None = None

    def source_key(self, canonical_key: str) -> str:
        """The name a canonical block key has in the source layout (for error messages)."""
        match = re.match(r"blocks\.(\d+)\.(.+)$", canonical_key)
        if match is None:
            return self.prefix + canonical_key
        block, rest = match.groups()
        if self.hf_match is not None:
            layer, _, param = rest.rpartition(".")
            return self.hf_match.source_name(int(block), layer, param)
        if _FORMAT_FAMILY[self.source_format] == "pointmae":
            return f"{self.prefix}blocks.blocks.{block}.{rest}"
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


def is_pathway_key(key: str) -> bool:
    """Whether a state-dict key is a tensor of an unmerged m2pt pathway (W', λ or b')."""
    return PATHWAY_KEY.search(key) is not None


def read_state_dict(source: CheckpointSource) -> tuple[dict[str, Tensor], list[str], dict[str, str], Path | None]:
    """Read a checkpoint file, ``save_pretrained`` folder, state dict or module into flat tensors.

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
    if path.is_dir():
        obj, path = read_hf_folder(path)
    else:
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


_CONVERTERS: dict[str, Callable[[dict[str, Tensor]], dict[str, Tensor]]] = {
    "timm": _convert_timm, "pointmae": _convert_pointmae,
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
    """``"pointmae"`` or ``"timm"``: whose timm-style block keys the checkpoint holds (None: none)."""
    for family, pattern in _FAMILY_PATTERNS.items():
        if any(pattern.match(k) for k in keys):
            return family
    return None


def select_hf_layout(keys: list[str], format: str = "auto", where: str = "") -> HFMatch | None:
    """The one Hugging Face layout whose block linears ``keys`` hold completely (None: none).

    Raises:
        CheckpointError: several encoders (e.g. both towers of a ``CLIPModel``), or a layout
            whose blocks compute more than the four linears capture (gated MLP, DeBERTa's
            position projections).
    """
    if format != "auto" and format not in HF_FORMATS:
        return None
    complete = [m for m in find_hf_layouts(keys, None if format == "auto" else format) if m.complete]
    if len(complete) > 1:
        found = "; ".join(m.describe() for m in complete)
        raise CheckpointError(
            f"The checkpoint{where} holds several encoders: {found}. Choose one with "
            f"prefix={complete[0].prefix!r} (load_auxiliary(..., prefix=...)), or pass the submodule of a live "
            "model (e.g. clip_model.vision_model).")
    if not complete:
        return None
    reason = refusal(complete[0], keys)
    if reason is not None:
        raise CheckpointError(
            f"The checkpoint{where} looks like the {complete[0].describe()}, but it cannot be mapped exactly to "
            f"the four block linears of Multimodal Pathway: {reason}. m2pt never approximates a layout.")
    return complete[0]


def _unknown_layout_error(keys: list[str], format: str, detected: str | None, where: str) -> CheckpointError:
    found = f"it looks like the {detected!r} layout" if detected else "no known block keys were found"
    wanted = f"the {format!r} layout was requested but " if format != "auto" else "unknown checkpoint layout: "
    partial = [m for m in find_hf_layouts(keys) if not m.complete]
    best = max((m.evidence for m in partial), default=None)
    if best is not None and best[0] > 0:
        match = next(m for m in partial if m.evidence == best)
        return CheckpointError(
            f"The checkpoint{where} looks like the {match.describe()}, but {partial_reason(match, keys)}. "
            "Every block needs all of its linears; m2pt never skips a layer.")
    near = "".join(f" Partly matches the {m.describe()}: {partial_reason(m, keys)}."
                   for m in partial if m.evidence == best)
    hf = "; ".join(f"{layout.name} ({layout.models}: '{layout.stack.split('|')[0].replace(chr(92), '')}.N."
                   f"{layout.linears.get('q', layout.linears.get('qkv'))}...')" for layout in HF_LAYOUTS)
    return CheckpointError(
        f"{wanted}{found}{where}.{near} Keys found: {_sample(keys)}. Layouts looked for: "
        "timm / mae / audiomae / videomae ('blocks.N.attn.qkv...'), pointmae ('blocks.blocks.N...'), "
        "m2pt (files from m2pt.checkpoints.save_model), optionally wrapped in "
        "{'model' | 'module' | 'base_model' | 'state_dict': ...} and prefixed by "
        f"{' / '.join(WRAPPER_PREFIXES)}; Hugging Face transformers, under any prefix: {hf}.")


def _select_prefix(tensors: dict[str, Tensor], prefix: str, where: str) -> dict[str, Tensor]:
    selected = {k: v for k, v in tensors.items() if k.startswith(prefix)}
    if not selected:
        heads = sorted({k.split(".", 1)[0] + "." for k in tensors if "." in k})
        raise CheckpointError(
            f"prefix={prefix!r}: no key of the checkpoint{where} starts with it; its keys start with {heads[:12]}.")
    return selected


def convert_checkpoint(
        source: CheckpointSource, format: str = "auto", num_heads: int | None = None, prefix: str | None = None,
) -> ConvertedCheckpoint:
    """Read a checkpoint and convert it to canonical names.

    Args:
        source: A ``.safetensors`` / ``.pth`` / ``.bin`` path, a ``save_pretrained`` folder,
            a (possibly wrapped) state dict, or a module (a live ``PreTrainedModel`` too)
            whose ``state_dict()`` is used.
        format: ``"auto"`` to detect the layout from the keys, or one of :data:`FORMATS`.
        num_heads: Heads of the source model; only DeBERTa's per-head ``in_proj`` needs them
            when no ``config.json`` / live config tells.
        prefix: Read only the keys under this prefix (e.g. ``"vision_model."`` of a
            ``CLIPModel``, which holds two encoders); None reads them all.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError (:class:`CheckpointError`): unknown or ambiguous layout, a layout that
            cannot be mapped exactly, a forced format whose keys are absent, an unmerged
            pathway model, or a file that cannot be read safely.
    """
    if format != "auto" and format not in FORMATS:
        raise CheckpointError(f"Unknown checkpoint format {format!r}; choose 'auto' or one of {list(FORMATS)}.")
    tensors, wrappers, metadata, path = read_state_dict(source)
    where = f" in {path}" if path is not None else ""
    if prefix:
        tensors = _select_prefix(tensors, prefix, where)
    pathway_key = next((k for k in tensors if is_pathway_key(k)), None)
    if pathway_key is not None:
        raise CheckpointError(
            f"The checkpoint{where} holds unmerged pathways (keys like {pathway_key!r}). Call "
            "m2pt.merge_pathways(model) and use the merged model's state_dict.")

    hf_match = select_hf_layout(list(tensors), format, where)
    if hf_match is not None:
        encoder, dropped = _split_encoder(tensors, hf_match.prefix)
        config = read_hf_config(source, path)
        if prefix:  # a composite model's config (CLIPConfig) nests the config of each tower
            nested = config.get(prefix.split(".", 1)[0].replace("_model", "_config"))
            config = nested if isinstance(nested, dict) else {}
        heads = num_heads if num_heads is not None else config.get("num_attention_heads")
        state_dict = convert_hf_encoder(encoder, hf_match, int(heads) if heads is not None else None)
        return ConvertedCheckpoint(
            state_dict, hf_match.layout.name, hf_match.prefix, dropped, metadata, path, config, hf_match)

    # timm-style layouts sit under known wrapper prefixes only: look for them inside the selected prefix.
    inner = {k[len(prefix):]: v for k, v in tensors.items()} if prefix else tensors
    family = detect_family(list(inner)) if format == "auto" else _FORMAT_FAMILY.get(format)
    encoder_prefix = _find_encoder_prefix(list(inner), family) if family is not None else None
    if encoder_prefix is None:
        auto = select_hf_layout(list(tensors), "auto", where) if format != "auto" else None
        detected = auto.layout.name if auto is not None else detect_family(list(inner))
        raise _unknown_layout_error(list(tensors), format, detected, where)
    encoder, dropped = _split_encoder(inner, encoder_prefix)
    state_dict = _CONVERTERS[family](encoder)
    if format == "auto":
        format = family if family != "timm" else _timm_family_format(state_dict, wrappers, metadata, bool(dropped))
    return ConvertedCheckpoint(state_dict, format, (prefix or "") + encoder_prefix, dropped, metadata, path)


def _split_encoder(tensors: Mapping[str, Tensor], encoder_prefix: str) -> tuple[dict[str, Tensor], list[str]]:
    """``(encoder tensors without the prefix, dropped keys)``: decoders and keys outside the prefix go."""
    encoder: dict[str, Tensor] = {}
    dropped: list[str] = []
    for key, value in tensors.items():
        inner = key[len(encoder_prefix):] if key.startswith(encoder_prefix) else None
        if inner is None or _DECODER_KEY.match(inner):
            dropped.append(key)
        else:
            encoder[inner] = value
    return encoder, dropped


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
