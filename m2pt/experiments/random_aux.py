"""The "more parameters, no knowledge" control: random weights with a pretrained model's statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor


def std_matched_random(state: Mapping[str, Tensor], seed: int) -> dict[str, Tensor]:
    """Replace every tensor by zero-mean Gaussian noise with exactly the same standard deviation.

    Each weight matrix (and bias vector) gets its own draw, rescaled so that its empirical std
    equals that of the source tensor. The pathway then adds a matrix of the same shape and the
    same scale as the pretrained one, but without anything learned in it.

    Args:
        state: Tensors of a pretrained auxiliary (e.g. ``load_auxiliary(path).state_dict()``).
        seed: Seed of the draw (the same seed gives the same tensors).

    Returns:
        A new state dict with the same keys, shapes and dtypes.
    """
    generator = torch.Generator().manual_seed(int(seed))
    out: dict[str, Tensor] = {}
    for name in sorted(state):
        source = state[name].detach().float()
        noise = torch.randn(source.shape, generator=generator)
        if source.numel() > 1:
            noise = (noise - noise.mean()) / noise.std().clamp_min(1e-12) * source.std()
        else:
            noise = torch.zeros_like(source)
        out[name] = noise.to(state[name].dtype)
    return out


def write_random_auxiliary(source_path: str | Path, destination: str | Path, seed: int) -> Path:
    """Write the std-matched random version of an auxiliary checkpoint (timm layout, ``load_auxiliary`` reads it).

    Only the block linears are kept (they are all a pathway uses).
    """
    from m2pt.checkpoints import load_auxiliary
    from m2pt.io import save_safetensors

    aux = load_auxiliary(str(source_path))
    state = {k: v for k, v in aux.state_dict().items() if k.startswith("blocks.")}
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(std_matched_random(state, seed), destination,
                     metadata={"m2pt_random_control_of": str(source_path), "seed": str(seed)})
    return destination
