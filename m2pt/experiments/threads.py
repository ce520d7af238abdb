"""Pick the number of torch threads (1 or 2) that trains faster on this machine right now.

On a 2-core machine that something else also uses, two intra-op threads can wait on each
other: before m2pt set OpenMP to passive waiting, a tiny-ViT step measured 3x to 9x slower
with 2 threads than with 1. On an idle machine 2 threads are faster. ``choose_threads`` times
both and keeps the faster.
"""

from __future__ import annotations

import time

import torch


def step_seconds(threads: int, repeats: int = 3) -> float:
    """Median seconds of a tiny image ViT training step (batch 64) with ``threads`` threads."""
    import torch.nn.functional as F

    from m2pt.models import create_model

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = create_model("image", "tiny", num_classes=10)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
        timings = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            timings.append(time.perf_counter() - started)
        timings = sorted(timings[1:])
        return timings[len(timings) // 2]
    finally:
        torch.set_num_threads(previous)


def choose_threads(max_threads: int = 2) -> tuple[int, dict[int, float]]:
    """``(threads, {threads: seconds per step})`` for 1..``max_threads`` threads."""
    timings = {n: step_seconds(n) for n in range(1, max(1, max_threads) + 1)}
    return min(timings, key=timings.get), timings
