"""Safe reading and atomic writing of tensor files (``.safetensors``, ``.pth``, ``.bin``).

Reading never unpickles arbitrary objects (``torch.load(weights_only=True)`` or safetensors).
Writing goes to a temporary file in the destination folder and is renamed into place, so an
interrupted or failed save never leaves a half-written file and keeps the previous one intact.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import re
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Union

import torch

PathLike = Union[str, os.PathLike]

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")


class NoSpaceError(OSError):
    """A write failed because the device (or the user's quota) is full; the previous file is kept."""


_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _is_out_of_space(exc: BaseException, folder: Path) -> bool:
    """Whether ``exc`` (raised while writing into ``folder``) means there is no room left."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in _NO_SPACE_ERRNOS:
            return True
        if "No space left on device" in str(cause) or "os error 28" in str(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    if not isinstance(exc, RuntimeError):
        return False
    try:  # a C++ writer (torch.save to a path) reports "enforce fail" with no errno
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _new_temporary(path: Path) -> Path:
    """Create an empty ``.<name>.<random>.tmp`` beside ``path`` with the mode the umask gives."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    On any exception (disk full, permission error, Ctrl-C) the temporary file is removed and
    ``path`` keeps its previous content; a full disk raises :class:`NoSpaceError`, which names
    the path. The file gets the permissions the process umask gives a new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(path)
    mode = tmp.stat().st_mode & 0o777  # 0o666 less the umask
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # some writers (safetensors) replace the file with a 0o600 one
        os.replace(tmp, path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        if not isinstance(exc, NoSpaceError) and _is_out_of_space(exc, path.parent):
            kept = f"; the previous {path.name} is kept" if path.exists() else ""
            raise NoSpaceError(errno.ENOSPC, f"no space left on {path.parent} while writing {path.name}{kept}. "
                                             "Free some space (or choose another folder) and try again") from exc
        raise
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
    """The string metadata stored in a ``.safetensors`` header ({} when none).

    Raises:
        ValueError: the file is empty, truncated or not a safetensors file.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise ValueError(f"{path} is not a readable safetensors file ({_unreadable_reason(Path(path), exc)})") from exc


def _unreadable_reason(path: Path, exc: BaseException) -> str:
    """Why a checkpoint could not be read, in words (never torch's advice to unpickle)."""
    try:
        if path.stat().st_size == 0:
            return "the file is empty (0 bytes)"
    except OSError:
        pass
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return f"it holds pickled Python objects ({found.group(1)}), which m2pt never unpickles"
    if "invalid load key" in text:
        return "it is not a safetensors file nor a torch checkpoint (unrecognised content)"
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        return "it holds pickled Python objects that are not tensors, which m2pt never unpickles"
    if re.search(r"zip archive|central directory|unexpected EOF|incomplete|truncated|too small", text, re.I) \
            or isinstance(exc, EOFError):
        return "it is truncated or corrupt"
    return f"not a safetensors file nor a torch tensor checkpoint: {type(exc).__name__}"


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
            raise ValueError(f"{path} is not a readable safetensors file ({_unreadable_reason(path, exc)})") from exc
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"Could not load {path} with torch.load(weights_only=True): {_unreadable_reason(path, exc)}.\n"
            "m2pt never unpickles arbitrary objects. If this checkpoint stores Python objects "
            "other than tensors, re-save its state_dict only (torch.save(model.state_dict(), ...)) "
            "or convert it to safetensors."
        ) from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a dict of tensors (a state_dict).")
    return obj
