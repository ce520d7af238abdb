"""Configuration of cross-modal pathways (the paper's defaults)."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence, Union

from .errors import PathwayError

DEFAULT_LAYERS: tuple[str, ...] = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
DEFAULT_BLOCK_PATTERN = r"blocks\.(\d+)\."

BlockPairing = Union[Literal["in_order", "reversed"], Mapping[int, int]]


@dataclass
class PathwayConfig:
    """How pathways connect a target model to its auxiliary model(s).

    The defaults reproduce Multimodal Pathway (Zhang et al., CVPR 2024): every linear layer of
    the transformer blocks gets ``W + λ W'`` with one trainable scalar λ per layer,
    initialised to 0, and both ``W`` and ``W'`` trainable.

    Attributes:
        layers: Modules that get pathways. A sequence of module-name suffixes (a module
            matches when its name equals a suffix or ends with ``"." + suffix``), or a
            regular expression that must match the full module name (``re.fullmatch``).
        scale_init: Initial value of every λ. 0 makes the model start exactly as the target.
        scale_shape: ``"scalar"``: one λ per layer (paper). ``"channel"``: one λ per
            output channel.
        train_scale: Whether λ is trained. False keeps λ fixed at ``scale_init`` (ablation).
        train_aux: Whether the auxiliary weights ``W'`` are trained (paper: True).
        train_target: Whether the target weight and bias of pathway layers are trained.
            ``train_target=False, train_aux=False`` is the paper's "fix acc" setting.
        aux_bias: False: the layer keeps the target bias only (paper). True: the bias
            becomes ``b + λ b'`` with the same λ as the weight.
        block_pairing: Which auxiliary block feeds each target block: ``"in_order"``
            (block i ↔ block i), ``"reversed"`` (block i ↔ block depth-1-i), or an explicit
            mapping ``{target_block: aux_block}``. With an explicit mapping, target blocks
            absent from it get no pathway. Different depths need an explicit mapping.
        block_pattern: Regular expression whose first group is the block index in a module
            name (timm's ``blocks.N.``). Names without a block index pair by identical name.
        aux_norm: ``"none"`` (paper): ``W'`` is used as stored. ``"match_target"``: each
            ``W'`` is rescaled once at attach time to the Frobenius norm of the target
            weight it is added to, so that λ means the same thing for every layer.
        scale_lr_mult: Learning-rate multiplier for λ used by :func:`m2pt.param_groups`
            (1.0 = paper).
        split_under_autocast: Under autocast, compute ``W x`` and ``W' x`` as separate
            low-precision matmuls and add ``λ W' x`` in float32, instead of rounding
            ``W + λ W'`` to bf16/fp16 (which loses most of ``λ W'`` at |λ| ≈ 1e-3 in bf16).
            ``nn.Linear`` layers only; one extra matmul per layer in the forward (a ViT-S
            training step under CPU bf16 autocast: 1.28x, ``benchmarks/bench_pathway_precision.py``).
    """

    layers: Union[Sequence[str], str] = DEFAULT_LAYERS
    scale_init: float = 0.0
    scale_shape: Literal["scalar", "channel"] = "scalar"
    train_scale: bool = True
    train_aux: bool = True
    train_target: bool = True
    aux_bias: bool = False
    block_pairing: BlockPairing = "in_order"
    block_pattern: str = DEFAULT_BLOCK_PATTERN
    aux_norm: Literal["none", "match_target"] = "none"
    scale_lr_mult: float = 1.0
    split_under_autocast: bool = False

    def __post_init__(self) -> None:
        if self.scale_shape not in ("scalar", "channel"):
            raise PathwayError(
                f"scale_shape must be 'scalar' or 'channel', got {self.scale_shape!r}.")
        if self.aux_norm not in ("none", "match_target"):
            raise PathwayError(
                f"aux_norm must be 'none' or 'match_target', got {self.aux_norm!r}.")
        if isinstance(self.block_pairing, str):
            if self.block_pairing not in ("in_order", "reversed"):
                raise PathwayError(
                    "block_pairing must be 'in_order', 'reversed' or a dict "
                    f"{{target_block: aux_block}}, got {self.block_pairing!r}.")
        else:
            self.block_pairing = {int(k): int(v) for k, v in dict(self.block_pairing).items()}
        if isinstance(self.layers, str):
            try:
                re.compile(self.layers)
            except re.error as exc:
                raise PathwayError(f"layers={self.layers!r} is not a valid regular expression: {exc}") from exc
        else:
            self.layers = tuple(self.layers)
            if not self.layers:
                raise PathwayError("layers is empty: name at least one module suffix, e.g. 'mlp.fc1'.")
        if not self.scale_lr_mult > 0:
            raise PathwayError(f"scale_lr_mult must be positive, got {self.scale_lr_mult}.")

    def matches(self, module_name: str) -> bool:
        """Whether a module of this name should get a pathway."""
        if isinstance(self.layers, str):
            return re.fullmatch(self.layers, module_name) is not None
        return any(module_name == s or module_name.endswith("." + s) for s in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (block-pairing keys become strings)."""
        out = dataclasses.asdict(self)
        out["layers"] = self.layers if isinstance(self.layers, str) else list(self.layers)
        if isinstance(self.block_pairing, dict):
            out["block_pairing"] = {str(k): v for k, v in self.block_pairing.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PathwayConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise PathwayError(f"Unknown PathwayConfig fields {sorted(unknown)}; known: {sorted(known)}.")
        return cls(**dict(data))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
