"""Load pretrained weights of any supported layout into a target model, tokenizer included.

The checkpoint is converted to canonical names (see :mod:`m2pt.checkpoints.formats`), then
matched to the model's ``state_dict()`` by name. Two adaptations are made, both reported:

* an image ``pos_embed`` whose grid differs from the model's is resampled with timm's
  ``resample_abs_pos_embed`` (bicubic; prefix tokens kept);
* a ``patch_embed.proj.weight`` of a 3-channel checkpoint loaded into a model with another
  channel count goes through timm's ``adapt_input_conv``: for one channel the RGB kernels
  are **summed**, so a grey image gives exactly the response the RGB model gives to that
  image replicated over three channels (an average would scale it by 1/3).

Every other shape mismatch (a different patch size, number of classes, width) is not
loaded: it is listed in the report, and ``strict=True`` turns it into an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .formats import CheckpointError, CheckpointSource, convert_checkpoint, is_pathway_key


class ShapeChange(NamedTuple):
    """A key whose checkpoint shape differs from the model's."""

    key: str
    checkpoint_shape: tuple[int, ...]
    model_shape: tuple[int, ...]
    note: str = ""

    def __str__(self) -> str:
        text = f"{self.key}: checkpoint {list(self.checkpoint_shape)} -> model {list(self.model_shape)}"
        return f"{text} ({self.note})" if self.note else text


def _listing(items: list, limit: int = 12) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


@dataclass
class LoadReport:
    """What :func:`load_target_weights` did, key by key (model names unless said otherwise).

    Attributes:
        source_format: Layout the checkpoint was read as.
        loaded: Model keys that received checkpoint values (resized ones included).
        missing: Model keys the checkpoint has no value for (they keep their initial value).
        unexpected: Checkpoint keys (canonical names) the model has no place for: ignored.
        resized: Keys loaded after adapting their shape (position embedding grid, input channels).
        mismatched: Keys present in both with shapes that cannot be adapted: not loaded.
        dropped: Source keys outside the encoder (decoders, masked-model heads): ignored.
    """

    source_format: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    resized: list[ShapeChange] = field(default_factory=list)
    mismatched: list[ShapeChange] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"LoadReport ({self.source_format} checkpoint): {len(self.loaded)} loaded, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected (ignored), {len(self.resized)} resized, "
            f"{len(self.mismatched)} shape mismatches (not loaded), {len(self.dropped)} dropped (decoder / outside the encoder)"
        ]
        for title, keys in (("missing", self.missing), ("unexpected", self.unexpected)):
            if keys:
                lines.append(f"  {title}: {_listing(keys)}")
        lines += [f"  resized: {change}" for change in self.resized]
        lines += [f"  shape mismatch: {change}" for change in self.mismatched]
        return "\n".join(lines)


def _resample_pos_embed(model: nn.Module, posemb: Tensor, model_shape: torch.Size) -> tuple[Tensor, str] | None:
    """Resample an image position embedding to the model's patch grid (None if not possible)."""
    from timm.layers import resample_abs_pos_embed

    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if grid is None or posemb.dim() != 3 or len(model_shape) != 3 or posemb.shape[-1] != model_shape[-1]:
        return None
    num_prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 1))
    old_tokens = posemb.shape[1] - num_prefix
    old_side = math.isqrt(max(old_tokens, 0))
    if old_side * old_side != old_tokens or model_shape[1] != num_prefix + grid[0] * grid[1]:
        return None
    resampled = resample_abs_pos_embed(
        posemb.float(), new_size=list(grid), old_size=[old_side, old_side], num_prefix_tokens=num_prefix,
    ).to(posemb.dtype)
    return resampled, f"resampled the {old_side}x{old_side} grid to {grid[0]}x{grid[1]}, bicubic"


def _adapt_input_channels(weight: Tensor, model_shape: torch.Size) -> tuple[Tensor, str] | None:
    """3-channel patch-embedding kernels -> the model's channel count (None if not that case)."""
    from timm.models import adapt_input_conv

    if weight.dim() != 4 or len(model_shape) != 4 or weight.shape[1] != 3:
        return None
    if weight.shape[0] != model_shape[0] or weight.shape[2:] != model_shape[2:]:
        return None
    how = "summed over RGB" if model_shape[1] == 1 else "repeated and rescaled"
    return adapt_input_conv(model_shape[1], weight), f"3 -> {model_shape[1]} input channels, {how} (timm adapt_input_conv)"


def load_target_weights(
        model: nn.Module,
        path_or_state_dict: CheckpointSource,
        format: str = "auto",
        strict: bool = False,
) -> LoadReport:
    """Load a pretrained checkpoint of any supported layout into a target model.

    Keys are converted to the model's names (timm blocks, and the tokenizer names of the
    image, video, point and audio models), then loaded where names and shapes agree.

    Args:
        model: The target (an m2pt model or a timm ViT), before pathways are attached.
        path_or_state_dict: A checkpoint file, a (possibly wrapped) state dict, or a module.
        format: ``"auto"`` or one of :data:`m2pt.checkpoints.FORMATS`.
        strict: Raise when any model key stays missing, any checkpoint key is unexpected,
            or any shape differs (the message names the key and both shapes).

    Returns:
        A :class:`LoadReport`.

    Raises:
        ValueError: the model has pathways attached, the checkpoint cannot be read or
            converted, or (``strict=True``) it does not match the model exactly.
    """
    model_state = model.state_dict()
    attached = next((k for k in model_state if is_pathway_key(k)), None)
    if attached is not None:
        raise CheckpointError(
            f"The model already has pathways attached ({attached!r}). Load the target weights first, "
            "then call m2pt.add_pathways.")
    checkpoint = convert_checkpoint(path_or_state_dict, format)
    report = LoadReport(checkpoint.source_format, dropped=list(checkpoint.dropped))

    to_load: dict[str, Tensor] = {}
    for key, value in checkpoint.state_dict.items():
        if key not in model_state:
            report.unexpected.append(key)
            continue
        model_shape = model_state[key].shape
        if value.shape == model_shape:
            to_load[key] = value
            continue
        adapted = None
        if key == "pos_embed":
            adapted = _resample_pos_embed(model, value, model_shape)
        elif key == "patch_embed.proj.weight":
            adapted = _adapt_input_channels(value, model_shape)
        change = ShapeChange(key, tuple(value.shape), tuple(model_shape), adapted[1] if adapted else "")
        if adapted is None:
            report.mismatched.append(change)
        else:
            to_load[key] = adapted[0]
            report.resized.append(change)

    report.loaded = [k for k in model_state if k in to_load]
    report.missing = [k for k in model_state if k not in to_load]
    if strict and (report.missing or report.unexpected or report.mismatched):
        problems = [f"shape mismatch {c}" for c in report.mismatched]
        problems += [f"missing from the checkpoint: {_listing(report.missing)}"] if report.missing else []
        problems += [f"not in the model: {_listing(report.unexpected)}"] if report.unexpected else []
        raise CheckpointError(
            f"strict=True: the {checkpoint.source_format} checkpoint does not match the model:\n  "
            + "\n  ".join(problems) + "\nUse strict=False to load what matches and read the report.")

    result = model.load_state_dict(to_load, strict=False)
    if result.unexpected_keys:  # cannot happen: every key was taken from model.state_dict()
        raise CheckpointError(f"load_state_dict rejected {result.unexpected_keys}.")
    return report
