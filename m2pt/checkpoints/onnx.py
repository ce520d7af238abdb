"""ONNX export of merged (plain) models, checked against onnxruntime.

A merged M2PT model is the vanilla architecture, so it exports like any model of it. Both of
PyTorch's exporters work: the dynamo-based one (``torch.export``, the default) and the
TorchScript tracer. The batch dimension is dynamic. Point-cloud models export with their
grouping (farthest point sampling and kNN written out in ONNX operators); a part-segmentation
model takes its object categories ``[B]`` (int64) as a second input, ``object_label``. The check
counts a NaN or Inf where PyTorch has a number as an infinite difference.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import torch
from torch import Tensor, nn

from ..io import PathLike, atomic_path
from .formats import CheckpointError
from .hf_export import is_transformers_model

Exporter = Literal["dynamo", "torchscript"]
INPUT_NAME = "input"
OBJECT_LABEL_NAME = "object_label"
OUTPUT_NAME = "output"
Inputs = tuple[Tensor, ...]


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote and how closely onnxruntime reproduces PyTorch.

    Attributes:
        path: The ``.onnx`` file.
        exporter: ``"dynamo"`` or ``"torchscript"``.
        input_shape: Shape of the example input (the batch dimension is dynamic).
        max_abs_diff: Largest ``|onnxruntime - torch|`` on a fresh input with a different batch
            size, or None when the check was skipped (``check=False``).
    """

    path: Path
    exporter: str
    input_shape: tuple[int, ...]
    max_abs_diff: Optional[float]


def example_input(model: nn.Module, batch_size: int = 2, seed: int = 0) -> Tensor:
    """A random input of the size the model records in ``pretrained_cfg["input_size"]``.

    Raises:
        CheckpointError: the model records no input size.
    """
    input_size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size")
    if not input_size:
        raise CheckpointError(
            f"{type(model).__name__} records no pretrained_cfg['input_size']; pass example= (a batch).")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, *input_size, generator=generator)


def example_inputs(model: nn.Module, batch_size: int = 2, seed: int = 0) -> Inputs:
    """:func:`example_input`, plus random object-category indices ``[B]`` for a part-segmentation
    model that takes them (``num_object_classes > 0``)."""
    inputs = (example_input(model, batch_size, seed),)
    categories = getattr(model, "num_object_classes", 0)
    if categories:
        inputs += (torch.randint(categories, (batch_size,), generator=torch.Generator().manual_seed(seed)),)
    return inputs


def _input_names(inputs: Inputs) -> list[str]:
    return [INPUT_NAME, OBJECT_LABEL_NAME, *(f"input_{i}" for i in range(2, len(inputs)))][:len(inputs)]


def _fresh_inputs(model: nn.Module, inputs: Inputs, seed: int = 1) -> Inputs:
    """New inputs like ``inputs`` with one more item in the batch (labels drawn within the model's categories)."""
    generator = torch.Generator().manual_seed(seed)
    fresh = []
    for tensor in inputs:
        shape = (tensor.shape[0] + 1, *tensor.shape[1:])
        if tensor.is_floating_point():
            fresh.append(torch.randn(shape, generator=generator, dtype=tensor.dtype))
        else:
            high = getattr(model, "num_object_classes", 0) or int(tensor.max()) + 1
            fresh.append(torch.randint(high, shape, generator=generator, dtype=tensor.dtype))
    return tuple(fresh)


def _export(model: nn.Module, inputs: Inputs, path: Path, exporter: Exporter, opset: Optional[int]) -> None:
    kwargs = {} if opset is None else {"opset_version": opset}
    names = _input_names(inputs)
    if exporter == "dynamo":
        batch = torch.export.Dim("batch")
        torch.onnx.export(model, inputs, str(path), dynamo=True, input_names=names, output_names=[OUTPUT_NAME],
                          dynamic_shapes=tuple({0: batch} for _ in inputs), external_data=False, verbose=False,
                          **kwargs)
    else:
        torch.onnx.export(model, inputs, str(path), dynamo=False, input_names=names, output_names=[OUTPUT_NAME],
                          dynamic_axes={name: {0: "batch"} for name in [*names, OUTPUT_NAME]}, **kwargs)


def _short_reason(exc: BaseException) -> str:
    text = str(exc)
    missing = re.search(r"No ONNX function found for [^\n]*", text)
    if missing:
        return missing.group(0)
    return f"{type(exc).__name__}: {text.strip().splitlines()[0] if text.strip() else ''}"[:400]


def run_onnxruntime(path: PathLike, x: Tensor | Inputs) -> Tensor:
    """Run the ``.onnx`` file on ``x`` (a batch, or a tuple of inputs in the model's order) with
    onnxruntime (CPU) and return the first output."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError("checking an ONNX export needs onnxruntime: pip install 'm2pt[onnx]'") from exc
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = x if isinstance(x, tuple) else (x,)
    feed = {spec.name: tensor.detach().cpu().numpy() for spec, tensor in zip(session.get_inputs(), inputs)}
    (output, *_) = session.run(None, feed)
    return torch.from_numpy(output)


def largest_difference(actual: Tensor, expected: Tensor) -> float:
    """``max |actual - expected|``; infinite where one side is NaN or infinite and the other is not."""
    actual, expected = actual.float(), expected.float()
    both_nan = actual.isnan() & expected.isnan()
    difference = (actual - expected).abs().masked_fill(both_nan, 0.0)
    return float(difference.nan_to_num(nan=math.inf).max()) if difference.numel() else 0.0


def export_onnx(
    model: nn.Module,
    path: PathLike,
    example: Optional[Tensor | Inputs] = None,
    *,
    exporter: Exporter = "dynamo",
    opset: Optional[int] = None,
    check: bool = True,
) -> OnnxExport:
    """Export a plain (merged) model to ONNX with a dynamic batch dimension.

    Args:
        model: The model; pathways must be merged first (``m2pt.merge_pathways``).
        path: The ``.onnx`` file to write (written completely or not at all).
        example: An example batch, or a tuple of the model's inputs (default: :func:`example_inputs`:
            random, of ``model.pretrained_cfg["input_size"]``, plus object categories for a
            part-segmentation model).
        exporter: ``"dynamo"`` (``torch.export``, default) or ``"torchscript"``.
        opset: ONNX opset (default: the exporter's).
        check: Run the export with onnxruntime on a new batch of another size and record the
            largest difference from PyTorch.

    Returns:
        An :class:`OnnxExport`.

    Raises:
        CheckpointError: unmerged pathways, a Hugging Face model (Optimum exports those), an
            unknown exporter, or an exporter failure (with the operation it could not translate).
    """
    from ..pathway import has_pathways

    if has_pathways(model):
        raise CheckpointError(
            f"{type(model).__name__} still has pathways: export the merged model, "
            "m2pt.merge_pathways(model), to ONNX (it is the plain architecture, at zero extra cost).")
    if is_transformers_model(model):
        raise CheckpointError(
            f"{type(model).__name__} is a Hugging Face model: save it with m2pt.save_model(model, folder) "
            "(save_pretrained) and export that folder with Hugging Face Optimum: optimum-cli export onnx --model "
            "<folder> <output>.")
    if exporter not in ("dynamo", "torchscript"):
        raise CheckpointError(f"exporter must be 'dynamo' or 'torchscript', got {exporter!r}.")
    path = Path(path)
    if path.suffix != ".onnx":
        raise CheckpointError(f"name the ONNX file '*.onnx', got {path}.")
    was_training = model.training
    model.eval()
    try:
        inputs = example_inputs(model) if example is None else example if isinstance(example, tuple) else (example,)
        with atomic_path(path) as tmp:
            try:
                _export(model, inputs, tmp, exporter, opset)
            except Exception as exc:  # exporters raise many types; the reason is what matters
                raise CheckpointError(
                    f"ONNX export of {type(model).__name__} with the {exporter} exporter failed: {_short_reason(exc)}"
                ) from exc
        max_abs_diff = None
        if check:
            fresh = _fresh_inputs(model, inputs)
            with torch.no_grad():
                expected = model(*fresh)
            max_abs_diff = largest_difference(run_onnxruntime(path, fresh), expected)
    finally:
        model.train(was_training)
    return OnnxExport(path, exporter, tuple(inputs[0].shape), max_abs_diff)
