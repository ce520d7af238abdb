"""Safe reading and atomic writing of tensor files (``.safetensors``, ``.pth``, ``.bin``).

Reading never unpickles arbitrary objects (``torch.load(weights_only=True)`` or safetensors).
Writing goes to a temporary file in the destination folder and is renamed into place, so an
interrupted or failed save never leaves a half-written file and keeps the previous one intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Union

import torch

PathLike = Union[str, os.PathLike]

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    On any exception (disk full, permission error, Ctrl-C) the temporary file is removed and
    ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Atomically write a text file."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: PathLike, data: Any) -> Path:
    """Atomically write ``data`` as indented JSON."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: PathLike, metadata: Mapping[str, str] | None = None
) -> Path:
    """Atomically save tensors to a ``.safetensors`` file.

    Tensors are made contiguous; tensors that share storage are cloned (safetensors refuses
    shared storage).
    """
    from safetensors.torch import save_file

    seen: set[tuple[int, int]] = set()
    prepared: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach()
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset()) if tensor.numel() else None
        if key is not None and key in seen:
            tensor = tensor.clone()
        elif key is not None:
            seen.add(key)
        prepared[name] = tensor.contiguous().cpu()
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    return atomic_write(path, lambda tmp: save_file(prepared, str(tmp), metadata=meta))


def read_safetensors_metadata(path: PathLike) -> dict[str, str]:
    """The string metadata stored in a ``.safetensors`` header ({} when none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_tensor_file(path: PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file without unpickling arbitrary objects.

    ``.safetensors`` files go through safetensors; anything else through
    ``torch.load(weights_only=True)``, which accepts nested dicts of tensors and plain values
    (the wrappers of MAE, Point-MAE and VideoMAE checkpoints) but refuses pickled code.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file cannot be read safely (the message says why and what to do).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    if path.suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device=str(map_location)))
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"Could not load {path} with torch.load(weights_only=True): {exc}\n"
            "m2pt never unpickles arbitrary objects. If this checkpoint stores Python objects "
            "other than tensors, re-save its state_dict only (torch.save(model.state_dict(), ...)) "
            "or convert it to safetensors."
        ) from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a dict of tensors (a state_dict).")
    return obj
