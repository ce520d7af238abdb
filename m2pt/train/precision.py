"""Mixed precision for training: autocast dtype, the fp16 gradient scaler, clipping, the optimiser step."""

from __future__ import annotations

import contextlib
from typing import Iterable, Optional

import torch
from torch import Tensor

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, enabled: bool, dtype: str = "bf16") -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` (``"bf16"`` or ``"fp16"``) on CUDA; nothing on CPU (float32 there)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=DTYPES[dtype])
    return contextlib.nullcontext()


class MixedPrecision:
    """Autocast, loss scaling and the optimiser step of one run.

    fp16 needs a gradient scaler (small gradients underflow in fp16): the loss is scaled before
    ``backward``, gradients are unscaled before clipping, and a step whose gradients hold
    inf/NaN is skipped while the scale shrinks, as in the base methods' ``NativeScaler``.
    bf16 and float32 need none.

    Args:
        device_type: ``"cuda"`` or ``"cpu"``.
        dtype: ``"bf16"`` or ``"fp16"``.
        enabled: Autocast on. The trainer enables it on CUDA only; CPU autocast is for tests
            and measurements.
    """

    def __init__(self, device_type: str, dtype: str = "bf16", enabled: bool = True) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"amp dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.device_type = device_type
        self.dtype = DTYPES[dtype]
        self.enabled = enabled
        self.scaler = torch.amp.GradScaler(device_type, enabled=enabled and dtype == "fp16")

    @classmethod
    def for_run(cls, device: torch.device, amp: bool, dtype: str) -> "MixedPrecision":
        """What the trainer uses: autocast only on CUDA."""
        return cls(device.type, dtype, enabled=amp and device.type == "cuda")

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, params: Iterable[Tensor],
             clip_grad: Optional[float] = None) -> None:
        """Unscale, clip the global gradient norm to ``clip_grad``, step (skipped on inf/NaN with fp16), zero."""
        if clip_grad is not None:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], clip_grad)
        self.scaler.step(optimizer)
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore the loss scale of a resumed fp16 run (ignored when this run needs no scaler)."""
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)
