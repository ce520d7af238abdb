"""ONNX export of merged (plain) models, checked against onnxruntime.

A merged M2PT model is the vanilla architecture, so it exports like any model of it. Both of
PyTorch's exporters work: the dynamo-based one (``torch.export``, the default) and the
TorchScript tracer. The batch dimension is dynamic. Point-cloud models export with their
grouping (farthest point sampling and kNN written out in ONNX operators).
"""

from __future__ import annotations

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
OUTPUT_NAME = "output"


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
            f"{type(model).__name__} records no pretrained_cfg['input_size']; pass example_input= (a batch).")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, *input_size, generator=generator)


def _export(model: nn.Module, x: Tensor, path: Path, exporter: Exporter, opset: Optional[int]) -> None:
    kwargs = {} if opset is None else {"opset_version": opset}
    if exporter == "dynamo":
        torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False, verbose=False,
                          **kwargs)
    else:
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, **kwargs)


def _short_reason(exc: BaseException) -> str:
    text = str(exc)
    missing = re.search(r"No ONNX function found for [^\n]*", text)
    if missing:
        return missing.group(0)
    return f"{type(exc).__name__}: {text.strip().splitlines()[0] if text.strip() else ''}"[:400]


def run_onnxruntime(path: PathLike, x: Tensor) -> Tensor:
    """Run the ``.onnx`` file on ``x`` with onnxruntime (CPU) and return the first output."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError("checking an ONNX export needs onnxruntime: pip install 'm2pt[onnx]'") from exc
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output, *_) = session.run(None, {session.get_inputs()[0].name: x.detach().cpu().numpy()})
    return torch.from_numpy(output)


def export_onnx(
    model: nn.Module,
    path: PathLike,
    example: Optional[Tensor] = None,
    *,
    exporter: Exporter = "dynamo",
    opset: Optional[int] = None,
    check: bool = True,
) -> OnnxExport:
    """Export a plain (merged) model to ONNX with a dynamic batch dimension.

    Args:
        model: The model; pathways must be merged first (``m2pt.merge_pathways``).
        path: The ``.onnx`` file to write (written completely or not at all).
        example: An example batch (default: random, of ``model.pretrained_cfg["input_size"]``).
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
        x = example if example is not None else example_input(model)
        with atomic_path(path) as tmp:
            try:
                _export(model, x, tmp, exporter, opset)
            except Exception as exc:  # exporters raise many types; the reason is what matters
                raise CheckpointError(
                    f"ONNX export of {type(model).__name__} with the {exporter} exporter failed: {_short_reason(exc)}"
                ) from exc
        max_abs_diff = None
        if check:
            fresh = torch.randn(x.shape[0] + 1, *x.shape[1:], generator=torch.Generator().manual_seed(1), dtype=x.dtype)
            with torch.no_grad():
                expected = model(fresh)
            max_abs_diff = float((run_onnxruntime(path, fresh) - expected.float()).abs().max())
    finally:
        model.train(was_training)
    return OnnxExport(path, exporter, tuple(x.shape), max_abs_diff)
