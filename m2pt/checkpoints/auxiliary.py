"""The auxiliary model of a pathway: the block linears of a transformer of another modality.

Only the four linear layers of each block take part in Multimodal Pathway (attention qkv,
attention output projection, MLP fc1 and fc2), so an :class:`AuxiliaryModel` keeps exactly
those, under timm's names, whatever codebase the checkpoint came from. Its ``state_dict()``
pairs by name with the blocks of any m2pt or timm ViT of the same width and depth.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor, nn

from .formats import (
    BLOCK_LINEARS, CheckpointError, CheckpointSource, ConvertedCheckpoint, convert_checkpoint, read_m2pt_metadata,
)

# Point-MAE's released models (the paper's point auxiliary) use 6 heads at width 768.
POINTMAE_HEADS_AT_768 = 6


def _frozen_linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    """An ``nn.Linear`` that holds ``weight`` / ``bias`` as they are (no init, no copy)."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta", dtype=weight.dtype)
    layer.weight = nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        layer.bias = nn.Parameter(bias, requires_grad=False)
    return layer


def _describe_width(state_dict: Mapping[str, Tensor]) -> str:
    """``"width D"`` read from the first 2-D block linear weight (for error messages)."""
    for key, value in state_dict.items():
        if re.fullmatch(r"blocks\.\d+\.(attn\.qkv|attn\.proj|mlp\.fc1)\.weight", key) and value.dim() == 2:
            return f"width {value.shape[1]}"
    return "width unknown"


class AuxiliaryAttention(nn.Module):
    """``qkv`` and ``proj`` of one attention layer."""

    def __init__(self, qkv: nn.Linear, proj: nn.Linear) -> None:
        super().__init__()
        self.qkv = qkv
        self.proj = proj


class AuxiliaryMlp(nn.Module):
    """``fc1`` and ``fc2`` of one MLP."""

    def __init__(self, fc1: nn.Linear, fc2: nn.Linear) -> None:
        super().__init__()
        self.fc1 = fc1
        self.fc2 = fc2


class AuxiliaryBlock(nn.Module):
    """The linears of one transformer block, under timm's names ``attn.*`` and ``mlp.*``."""

    def __init__(self, attn: AuxiliaryAttention, mlp: AuxiliaryMlp) -> None:
        super().__init__()
        self.attn = attn
        self.mlp = mlp


class AuxiliaryModel(nn.Module):
    """Block linears of an auxiliary transformer, ready to pair with a target by name.

    Holds ``blocks.N.attn.qkv``, ``blocks.N.attn.proj``, ``blocks.N.mlp.fc1`` and
    ``blocks.N.mlp.fc2`` as frozen ``nn.Linear`` layers (``bias=None`` where the source has
    no bias). It has no forward: pathways copy its weights into the target model. Build it
    with :func:`load_auxiliary` or :meth:`from_state_dict`.

    Attributes:
        source_format: Layout the weights were read from (``"bert"``, ``"pointmae"``, ...).
        embed_dim: Width of the blocks.
        depth: Number of blocks.
        mlp_hidden_dim: Hidden width of the MLPs.
        num_heads: Attention heads, when the checkpoint tells (else None).
        source: Where the weights came from (a path, or ``"state_dict"``).
    """

    def __init__(
            self,
            blocks: list[AuxiliaryBlock],
            source_format: str,
            num_heads: int | None = None,
            source: str = "state_dict",
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        first = blocks[0]
        self.source_format = source_format
        self.embed_dim: int = first.attn.qkv.in_features
        self.depth: int = len(blocks)
        self.mlp_hidden_dim: int = first.mlp.fc1.out_features
        self.num_heads = num_heads
        self.source = source

    @classmethod
    def from_state_dict(
            cls,
            state_dict: Mapping[str, Tensor],
            source_format: str = "m2pt",
            num_heads: int | None = None,
            source: str = "state_dict",
            checkpoint: ConvertedCheckpoint | None = None,
    ) -> "AuxiliaryModel":
        """Build from a state dict in canonical names (``blocks.N.attn.qkv.weight``, ...).

        Other keys (tokenizer, norms, head) are ignored.

        Raises:
            ValueError: no blocks, block indices not contiguous from 0, a block without one of
                its four linears, or shapes that do not form a transformer of one width.
        """
        describe = checkpoint.source_key if checkpoint is not None else (lambda key: key)
        indices = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r"blocks\.(\d+)\.", k))})
        if not indices:
            raise CheckpointError(f"No 'blocks.N.*' keys in the state dict ({len(state_dict)} keys).")
        depth = indices[-1] + 1
        width = _describe_width(state_dict)
        if indices != list(range(depth)):
            gaps = sorted(set(range(depth)) - set(indices))
            raise CheckpointError(
                f"Block indices are not contiguous: found {indices}, so block(s) {gaps} are missing "
                f"(depth {depth} from the highest index, {width}). Expected blocks 0..{depth - 1}; "
                f"e.g. key {describe(f'blocks.{gaps[0]}.attn.qkv.weight')!r} is absent.")

        blocks: list[AuxiliaryBlock] = []
        expected: dict[str, tuple[int, int]] = {}
        for index in range(depth):
            layers: dict[str, nn.Linear] = {}
            for name in BLOCK_LINEARS:
                key = f"blocks.{index}.{name}.weight"
                if key not in state_dict:
                    raise CheckpointError(
                        f"Block {index} (of depth {depth}, {width}) has no {name} weight: key "
                        f"{describe(key)!r} is missing. Every block needs {', '.join(BLOCK_LINEARS)}.")
                weight = state_dict[key]
                bias = state_dict.get(f"blocks.{index}.{name}.bias")
                if weight.dim() != 2:
                    raise CheckpointError(f"{describe(key)!r} has shape {tuple(weight.shape)}; a linear weight is 2-D.")
                if not expected:
                    dim = weight.shape[1]
                    hidden = state_dict.get("blocks.0.mlp.fc1.weight", weight).shape[0]
                    expected = {"attn.qkv": (3 * dim, dim), "attn.proj": (dim, dim),
                                "mlp.fc1": (hidden, dim), "mlp.fc2": (dim, hidden)}
                if tuple(weight.shape) != expected[name]:
                    raise CheckpointError(
                        f"{describe(key)!r} has shape {tuple(weight.shape)}, expected {expected[name]} for a "
                        f"transformer of depth {depth}, {width} and MLP width {expected['mlp.fc1'][0]}.")
                if bias is not None and tuple(bias.shape) != (weight.shape[0],):
                    raise CheckpointError(
                        f"{describe(key[:-len('weight')] + 'bias')!r} has shape {tuple(bias.shape)}, "
                        f"expected ({weight.shape[0]},).")
                layers[name] = _frozen_linear(weight, bias)
            blocks.append(AuxiliaryBlock(
                AuxiliaryAttention(layers["attn.qkv"], layers["attn.proj"]),
                AuxiliaryMlp(layers["mlp.fc1"], layers["mlp.fc2"])))

        if num_heads is not None and expected["attn.proj"][0] % num_heads:
            raise CheckpointError(f"num_heads={num_heads} does not divide the width {expected['attn.proj'][0]}.")
        return cls(blocks, source_format, num_heads=num_heads, source=source)

    @property
    def has_bias(self) -> dict[str, bool]:
        """Whether each of the four linears has a bias (from block 0)."""
        block = self.blocks[0]
        layers = {"attn.qkv": block.attn.qkv, "attn.proj": block.attn.proj,
                  "mlp.fc1": block.mlp.fc1, "mlp.fc2": block.mlp.fc2}
        return {name: layer.bias is not None for name, layer in layers.items()}

    def extra_repr(self) -> str:
        biasless = [name for name, has in self.has_bias.items() if not has]
        return (
            f"source_format={self.source_format!r}, depth={self.depth}, embed_dim={self.embed_dim}, "
            f"mlp_hidden_dim={self.mlp_hidden_dim}, num_heads={self.num_heads}, "
            f"no_bias={biasless}, source={self.source!r}")

    def __repr__(self) -> str:
        d, h = self.embed_dim, self.mlp_hidden_dim
        return (
            f"{type(self).__name__}({self.extra_repr()})\n"
            f"  blocks.0..{self.depth - 1}: attn.qkv {d}->{3 * d}, attn.proj {d}->{d}, "
            f"mlp.fc1 {d}->{h}, mlp.fc2 {h}->{d}")


def _check_hf_config(config: Mapping[str, Any], aux: AuxiliaryModel, where: str) -> None:
    for field, found in (("num_hidden_layers", aux.depth), ("hidden_size", aux.embed_dim),
                         ("intermediate_size", aux.mlp_hidden_dim)):
        if field in config and int(config[field]) != found:
            raise CheckpointError(
                f"{where} says {field}={config[field]} but the weights have {found} "
                f"(depth {aux.depth}, width {aux.embed_dim}, MLP width {aux.mlp_hidden_dim}): "
                "the config does not belong to these weights.")


def load_auxiliary(
        path_or_state_dict: CheckpointSource,
        format: str = "auto",
        num_heads: int | None = None,
        prefix: str | None = None,
) -> AuxiliaryModel:
    """Load the block linears of a pretrained transformer of any supported layout.

    Args:
        path_or_state_dict: A ``.safetensors`` / ``.pth`` / ``.bin`` file, a Hugging Face
            ``save_pretrained`` folder, a state dict (wrapped or not), or a module (a live
            ``transformers`` ``PreTrainedModel`` too).
        format: ``"auto"`` (detect from the keys) or one of
            :data:`m2pt.checkpoints.FORMATS` (``"timm"``, ``"mae"``, ``"audiomae"``,
            ``"videomae"``, ``"pointmae"``, ``"m2pt"``, and the Hugging Face layouts ``"bert"``,
            ``"deberta"``, ``"deberta-v2"``, ``"hf-vit"``, ``"dinov2"``, ``"clip"``,
            ``"wav2vec2"``).
        num_heads: Heads of the source model, when the checkpoint cannot tell (a Hugging Face
            ``config.json`` or live config, Point-MAE at width 768 and m2pt files can).
        prefix: Read only the encoder under this key prefix, for checkpoints that hold
            several (``"vision_model."`` or ``"text_model."`` of a ``CLIPModel``).

    Returns:
        An :class:`AuxiliaryModel` with ``blocks.N.{attn.qkv,attn.proj,mlp.fc1,mlp.fc2}``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unknown or ambiguous layout, a layout that cannot be mapped exactly (a
            gated MLP, extra position projections), a file that cannot be read safely,
            non-contiguous blocks, a block without one of its four linears, inconsistent
            shapes, or a Hugging Face config that does not belong to the weights.
    """
    checkpoint = convert_checkpoint(path_or_state_dict, format, num_heads=num_heads, prefix=prefix)
    from_file = checkpoint.path is not None
    state_dict = {k: v if from_file else v.detach().clone()
                  for k, v in checkpoint.state_dict.items() if k.startswith("blocks.")}
    source = str(checkpoint.path) if from_file else "state_dict"
    aux = AuxiliaryModel.from_state_dict(
        state_dict, checkpoint.source_format, num_heads=None, source=source, checkpoint=checkpoint)

    if num_heads is None:
        if checkpoint.hf_match is not None:
            num_heads = checkpoint.config.get("num_attention_heads")
        elif checkpoint.source_format == "pointmae" and aux.embed_dim == 768:
            num_heads = POINTMAE_HEADS_AT_768
        elif checkpoint.source_format == "m2pt":
            num_heads = read_m2pt_metadata(checkpoint.metadata).get("summary", {}).get("num_heads")
    if checkpoint.config:
        where = f"{checkpoint.path.parent / 'config.json'}" if from_file else "the model's config"
        _check_hf_config(checkpoint.config, aux, where)
    if num_heads is not None:
        if aux.embed_dim % int(num_heads):
            raise CheckpointError(f"num_heads={num_heads} does not divide the width {aux.embed_dim} of {source}.")
        aux.num_heads = int(num_heads)
    return aux
