"""What a checkpoint file holds (``m2pt info``): format, shapes, where pathways are, λ statistics."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from m2pt.io import load_tensor_file, read_safetensors_metadata

_SCALE_KEY = re.compile(r"^(.*)\.parametrizations\.weight\.(\d+)\.scale$")


def _scale_stats(state: dict[str, Any]) -> dict[str, Any]:
    scales = {m.group(1) + (f"#{m.group(2)}" if m.group(2) != "0" else ""): v.float()
              for k, v in state.items() if (m := _SCALE_KEY.match(k))}
    if not scales:
        return {}
    means = torch.stack([v.mean() for v in scales.values()])
    return {"pathway_layers": len(scales), "scale_mean": means.mean().item(),
            "scale_abs_mean": means.abs().mean().item(), "scale_min": means.min().item(),
            "scale_max": means.max().item(), "layers": sorted(scales)}


def _shape_summary(state: dict[str, Any]) -> dict[str, Any]:
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    blocks = sorted({int(m.group(1)) for k in tensors if (m := re.search(r"blocks\.(\d+)\.", k))})
    qkv = next((v for k, v in tensors.items() if re.search(r"blocks\.0\.attn\.qkv\.(original|weight)", k)), None)
    return {
        "tensors": len(tensors),
        "parameters": int(sum(v.numel() for v in tensors.values())),
        "dtypes": dict(Counter(str(v.dtype).replace("torch.", "") for v in tensors.values())),
        "depth": len(blocks),
        "width": int(qkv.shape[1]) if qkv is not None else None,
    }


def describe_checkpoint(path: str | Path) -> dict[str, Any]:
    """A JSON-serialisable description of a checkpoint file or run folder.

    Raises:
        FileNotFoundError: the path does not exist.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        for name in ("pathways.safetensors", "model.safetensors", "encoder.safetensors", "checkpoint.pt"):
            if (path / name).is_file():
                return describe_checkpoint(path / name)
        raise FileNotFoundError(f"{path} is a folder without an m2pt checkpoint")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    out: dict[str, Any] = {"path": str(path), "bytes": path.stat().st_size}
    if path.name == "checkpoint.pt" or path.suffix == ".pt" and _is_training_state(path):
        state = load_tensor_file(path)
        out.update(format="m2pt training state", epoch=state["epoch"], step=state["step"],
                   batch_in_epoch=state["batch_in_epoch"], **_shape_summary(state["model"]),
                   **_scale_stats(state["model"]))
        return out
    metadata = read_safetensors_metadata(path) if path.suffix == ".safetensors" else {}
    state = load_tensor_file(path)
    if metadata.get("m2pt_format"):
        out["format"] = f"m2pt pathway model ({metadata['m2pt_format']}), unmerged"
        out["pathway_config"] = json.loads(metadata.get("config", "{}"))
    elif metadata.get("m2pt"):
        out["format"] = "m2pt plain model"
        out["model_info"] = json.loads(metadata["m2pt"])
    else:
        try:
            from m2pt.checkpoints import convert_checkpoint

            out["format"] = convert_checkpoint(state).source_format
        except Exception as exc:  # an unknown layout is still worth describing
            out["format"] = f"unrecognised ({type(exc).__name__})"
    out.update(_shape_summary(state))
    out.update(_scale_stats(state))
    return out


def _is_training_state(path: Path) -> bool:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return False
    return isinstance(state, dict) and {"model", "optimizer", "step"} <= set(state)
