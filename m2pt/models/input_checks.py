"""Input validation shared by the modality models: fail with a message instead of a shape error deep inside."""
from typing import Optional, Sequence

import torch

__all__ = ["check_input", "check_finite_inputs", "format_shape", "ImageInputCheck"]


def format_shape(shape: Sequence[Optional[int]]) -> str:
    """Render a shape like `[B, 1, 28, 28]`, with `None` entries shown as their symbol."""
    return "[" + ", ".join(str(s) for s in shape) + "]"


def check_input(
        x: torch.Tensor,
        expected: Sequence[Optional[int]],
        what: str,
        symbols: Optional[Sequence[str]] = None,
        finite: bool = False,
) -> None:
    """Check a batched input tensor's shape (and, with `finite`, its values).

    The shape checks read only tensor metadata. The value check reads every element, which on
    an accelerator waits for the device (a host-device synchronisation per forward): models
    run it only when asked to (:func:`check_finite_inputs`).

    Args:
        x: Input tensor, batch first.
        expected: Expected shape without the batch dimension; `None` matches any size.
        what: Name used in the message, e.g. "image model".
        symbols: Names for `None` entries in the message (default "?").
        finite: Also fail on NaN or inf values.

    Raises:
        ValueError: Wrong type, number of dims or sizes, an empty batch, or (with `finite`) non-finite values.
    """
    symbols = list(symbols or [])
    shown = ["B"] + [s if s is not None else (symbols.pop(0) if symbols else "?") for s in expected]
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what} expects a tensor {format_shape(shown)}, got {type(x).__name__}")
    if x.dim() != len(expected) + 1 or any(e is not None and e != g for e, g in zip(expected, x.shape[1:])):
        raise ValueError(f"{what} expects input {format_shape(shown)}, got {format_shape(list(x.shape))}")
    if x.numel() == 0:
        raise ValueError(f"{what} got an empty input {format_shape(list(x.shape))}")
    # The value check needs the data: skipped while torch.export / torch.compile trace the model
    # (an exported graph has no data to check, and reading it would break the graph).
    if finite and x.is_floating_point() and not torch.compiler.is_compiling() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what} got non-finite values (NaN or inf) in its input")


def check_finite_inputs(model: torch.nn.Module, enabled: bool = True) -> torch.nn.Module:
    """Make an m2pt model also reject NaN/inf inputs (off by default: it costs a device sync per forward).

    Returns:
        `model`.
    """
    model.check_finite_inputs = enabled
    return model


def finite_checks_enabled(module: torch.nn.Module) -> bool:
    """Whether :func:`check_finite_inputs` turned the value check on for `module`."""
    return bool(getattr(module, "check_finite_inputs", False))


class ImageInputCheck:
    """Forward pre-hook that validates the input of a plain timm `VisionTransformer`.

    A hook (rather than a subclass) keeps the image model an ordinary timm model. It is a small
    module-level class so that the model stays picklable and deep-copyable.
    """

    def __init__(self, input_size: Sequence[int]) -> None:
        self.input_size = tuple(int(s) for s in input_size)

    def __call__(self, module: torch.nn.Module, args: tuple) -> None:
        if not args:
            raise ValueError(f"image model expects input {format_shape(['B', *self.input_size])}, got nothing")
        check_input(args[0], self.input_size, "image model", finite=finite_checks_enabled(module))
