"""Using a saved model the documented way: its own classes and input pipeline, recorded in the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from m2pt.checkpoints import CheckpointError


def model_classes_and_input(model: nn.Module, path: str | Path) -> tuple[list[str], dict[str, Any]]:
    """The class names and input spec stored with a model loaded by ``m2pt.checkpoints.load_model``.

    Raises:
        CheckpointError: the model file records neither (written before m2pt stored them).
    """
    classes, spec = getattr(model, "m2pt_classes", None), getattr(model, "m2pt_input", None)
    if not classes or not spec:
        raise CheckpointError(
            f"{path} does not record its class names and input (it was written by an older m2pt or by "
            "save_model without classes=/input_spec=); merge the run again (m2pt merge RUN OUT) or re-save it "
            "with m2pt.checkpoints.save_model(model, path, classes=..., input_spec=...)")
    return list(classes), dict(spec)


def evaluation_data_options(spec: dict[str, Any], modality: str, data: str) -> dict[str, Any]:
    """The input spec's settings that the dataset for ``data`` accepts as options."""
    from m2pt.data.factory import BUILTIN_DATASETS, DATASET_CLASSES
    from m2pt.options import constructor_defaults

    classes = [BUILTIN_DATASETS[modality]] if data == "builtin" else DATASET_CLASSES[modality]
    accepted = set(constructor_defaults(classes)) - {"classes", "transform", "root", "seed"}
    return {k: v for k, v in spec.items() if k in accepted}


def match_model_classes(dataset: Dataset, model: nn.Module, what: str) -> Dataset:
    """``dataset`` with labels in the model's class order (by name), or a count check for older files."""
    from m2pt.data.class_map import match_classes

    classes = getattr(model, "m2pt_classes", None)
    if classes:
        return match_classes(dataset, classes, what)
    expected = model.m2pt_model_args["num_classes"]
    if dataset.num_classes != expected:
        raise ValueError(f"{what} has {dataset.num_classes} classes, the model {expected}")
    return dataset


@torch.no_grad()
def predict_files(model: nn.Module, files: Sequence[str | Path], classes: Sequence[str], spec: dict[str, Any],
                  top_k: int = 5, device: torch.device | str = "cpu", batch_size: int = 32) -> list[dict[str, Any]]:
    """Top-k class names and probabilities for each file (softmax; sigmoid for multi-label models).

    Raises:
        m2pt.data.DatasetError: a file cannot be read as the model's modality (named).
    """
    from m2pt.data.input_spec import load_input

    model = model.to(device).eval()
    multi_label = bool(getattr(model, "multi_label", False) or getattr(model, "m2pt_model_args", {}).get("multi_label"))
    k = max(1, min(top_k, len(classes)))
    results: list[dict[str, Any]] = []
    for start in range(0, len(files), batch_size):
        chunk = list(files[start:start + batch_size])
        x = torch.stack([load_input(f, spec) for f in chunk]).to(device)
        logits = model(x).float()
        probabilities = logits.sigmoid() if multi_label else logits.softmax(-1)
        values, indices = probabilities.topk(k, dim=-1)
        for file, vals, idxs in zip(chunk, values.tolist(), indices.tolist()):
            results.append({"file": str(file), "top": [{"class": classes[i], "probability": round(v, 6)}
                                                        for v, i in zip(vals, idxs)]})
    return results
