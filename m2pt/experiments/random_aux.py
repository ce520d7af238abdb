"""Controls of a pathway: weights with a pretrained model's statistics but not its knowledge.

* :func:`std_matched_random`: Gaussian noise with the same per-matrix standard deviation
  ("more parameters, no knowledge");
* :func:`permuted`: the pretrained values themselves with the rows and the columns of every
  matrix shuffled by a fixed random permutation. The multiset of values and the singular
  values are exactly those of the pretrained matrix; only its alignment with the target's
  features is destroyed. Where the random control and the pathway differ, this control tells
  "knowledge from another modality" from "weights with the right spectrum".
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import Tensor

#: Control kinds, as used in auxiliary sources (``"random:mae:point"``, ``"permuted:mae:point"``).
CONTROL_KINDS = ("random", "permuted")


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


def permuted(state: Mapping[str, Tensor], seed: int) -> dict[str, Tensor]:
    """Shuffle the rows and the columns of every matrix by a fixed random permutation per matrix.

    ``W[P_rows][:, P_cols]`` has the same values and the same singular values as ``W``
    (permutation matrices are orthogonal), but row ``i`` no longer meets the input feature it
    was trained on. A bias ``<name>.bias`` follows the row permutation of ``<name>.weight``;
    other vectors get their own permutation; scalars are kept.

    Args:
        state: Tensors of a pretrained auxiliary.
        seed: Seed of the permutations (the same seed gives the same tensors).

    Returns:
        A new state dict with the same keys, shapes and dtypes.
    """
    generator = torch.Generator().manual_seed(int(seed))
    row_orders: dict[str, Tensor] = {}
    out: dict[str, Tensor] = {}
    for name in sorted(state, key=lambda n: (state[n].ndim < 2, n)):  # matrices first, so biases find their rows
        source = state[name].detach()
        if source.ndim >= 2:
            rows = torch.randperm(source.shape[0], generator=generator)
            cols = torch.randperm(source.shape[1], generator=generator)
            row_orders[name.removesuffix(".weight")] = rows
            out[name] = source[rows][:, cols].clone()
        elif source.ndim == 1 and source.numel() > 1:
            rows = row_orders.get(name.removesuffix(".bias"))
            if rows is None or len(rows) != source.numel():
                rows = torch.randperm(source.numel(), generator=generator)
            out[name] = source[rows].clone()
        else:
            out[name] = source.clone()
    return {name: out[name] for name in sorted(out)}


CONTROLS: dict[str, Callable[[Mapping[str, Tensor], int], dict[str, Tensor]]] = {
    "random": std_matched_random, "permuted": permuted}


def write_control_auxiliary(source_path: str | Path, destination: str | Path, seed: int,
                            kind: str = "random") -> Path:
    """Write a control version of an auxiliary checkpoint (timm layout, ``load_auxiliary`` reads it).

    Only the block linears are kept (they are all a pathway uses).

    Args:
        source_path: The pretrained auxiliary.
        destination: The ``.safetensors`` file to write.
        seed: Seed of the draw or permutation.
        kind: ``"random"`` (:func:`std_matched_random`) or ``"permuted"`` (:func:`permuted`).
    """
    from m2pt.checkpoints import load_auxiliary
    from m2pt.io import save_safetensors

    if kind not in CONTROLS:
        raise ValueError(f"unknown control kind {kind!r}; known: {', '.join(CONTROLS)}")
    aux = load_auxiliary(str(source_path))
    state = {k: v for k, v in aux.state_dict().items() if k.startswith("blocks.")}
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(CONTROLS[kind](state, seed), destination,
                     metadata={f"m2pt_{kind}_control_of": str(source_path), "seed": str(seed)})
    return destination


def write_random_auxiliary(source_path: str | Path, destination: str | Path, seed: int) -> Path:
    """Write the std-matched random version of an auxiliary checkpoint (see :func:`write_control_auxiliary`)."""
    return write_control_auxiliary(source_path, destination, seed, kind="random")
