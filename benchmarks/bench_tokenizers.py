"""Throughput of the CPU tokenizers: point-cloud grouping (batched vs per-cloud loop) and fbank.

Run: PYTHONPATH=. python benchmarks/bench_tokenizers.py [--batch 32] [--repeats 3] [--threads N]

Small per-step tensor ops (the FPS loop) suffer badly from OpenMP oversubscription on a loaded
machine; compare `--threads 1` with the default before drawing conclusions.
"""
import argparse
import math
import time
from typing import Callable

import torch

from m2pt.models import FbankTransform, group_points


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` timed calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_point_grouping(batch: int, repeats: int) -> None:
    print(f"point-cloud tokenization (FPS + kNN grouping), batch {batch}, torch threads {torch.get_num_threads()}")
    for num_points, num_groups, group_size in ((1024, 64, 32), (2048, 128, 32)):
        clouds = torch.rand(batch, num_points, 3)
        batched = best_seconds(lambda: group_points(clouds, num_groups, group_size), repeats)
        looped = best_seconds(
            lambda: [group_points(cloud[None], num_groups, group_size) for cloud in clouds], repeats)
        print(f"  {num_points} points -> {num_groups} x {group_size}: batched {batch / batched:8.1f} clouds/s, "
              f"per-cloud loop {batch / looped:8.1f} clouds/s, speed-up x{looped / batched:.1f}")


def bench_fbank(batch: int, repeats: int) -> None:
    print(f"fbank (kaldi-compatible, 128 mel bins), batch {batch}")
    for seconds, target_length in ((10.0, 1024), (1.0, 96)):
        t = torch.arange(int(seconds * 16000)) / 16000
        clips = (0.3 * torch.sin(2 * math.pi * 440.0 * t) + 0.01 * torch.randn(batch, 1, t.numel()))
        transform = FbankTransform(target_length=target_length)
        elapsed = best_seconds(lambda: transform(clips), repeats)
        print(f"  {seconds:4.1f} s clips -> {target_length} frames: {batch / elapsed:8.1f} clips/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bench_point_grouping(args.batch, args.repeats)
    bench_fbank(args.batch, args.repeats)


if __name__ == "__main__":
    main()
