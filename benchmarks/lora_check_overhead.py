"""Cost of the PEFT merge check (``LoraMergeCheck``) that every pathway model runs before forward.

Runs a pathway model with and without the hook in one process, interleaved over several rounds,
and prints the time per forward and the ratio (with / without).

    python benchmarks/lora_check_overhead.py [--arch vit_small_patch16_224] [--batch 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch

import m2pt
from m2pt.pathway.peft_compat import LoraMergeCheck


def time_forwards(model: torch.nn.Module, x: torch.Tensor, steps: int) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vit_small_patch16_224")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = m2pt.add_pathways(timm.create_model(args.arch), timm.create_model(args.arch)).eval()
    x = torch.randn(args.batch, 3, 224, 224)
    (key, hook), = [(k, h) for k, h in model._forward_pre_hooks.items() if isinstance(h, LoraMergeCheck)]
    time_forwards(model, x, 2)  # warm-up
    with_hook, without_hook = [], []
    for _ in range(args.rounds):
        with_hook.append(time_forwards(model, x, args.steps))
        del model._forward_pre_hooks[key]
        without_hook.append(time_forwards(model, x, args.steps))
        model._forward_pre_hooks[key] = hook
    start = time.perf_counter()
    for _ in range(1000):
        hook(model, (x,))
    hook_us = (time.perf_counter() - start) * 1e3
    a, b = statistics.median(with_hook), statistics.median(without_hook)
    print(f"{args.arch}, batch {args.batch}: forward {a * 1e3:.1f} ms with the check, {b * 1e3:.1f} ms without; "
          f"ratio {a / b:.4f}; the check alone {hook_us:.1f} µs per call")


if __name__ == "__main__":
    main()
