"""Worker for test_distributed.py, launched by torchrun: trains a pathway ViT with DDP on gloo.

Each rank takes its half of a fixed global batch; rank 0 writes the final parameters.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

import m2pt
from tests.pathway.helpers import images, tiny_vit

STEPS = 3
GLOBAL_BATCH = 8


def build() -> torch.nn.Module:
    return m2pt.add_pathways(tiny_vit(seed=0), tiny_vit(seed=1), scale_init=0.05)


def global_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = images(batch=GLOBAL_BATCH, seed=100 + step)
    y = torch.arange(GLOBAL_BATCH) % 5
    return x, y


def train(model: torch.nn.Module, rank: int, world_size: int) -> None:
    # SGD, not Adam: Adam normalises the pure-rounding-noise gradient of the key bias into full steps.
    optimizer = torch.optim.SGD(m2pt.param_groups(model, weight_decay=0.05), lr=0.1, momentum=0.9)
    for step in range(STEPS):
        x, y = global_batch(step)
        shard = slice(rank * GLOBAL_BATCH // world_size, (rank + 1) * GLOBAL_BATCH // world_size)
        loss = torch.nn.functional.cross_entropy(model(x[shard]), y[shard])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main(out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    model = torch.nn.parallel.DistributedDataParallel(build())
    train(model, rank, world_size)
    state = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
    torch.save(state, os.path.join(out_dir, f"rank{rank}.pt"))
    if rank == 0:
        merged = m2pt.merge_pathways(model)
        torch.save(merged.state_dict(), os.path.join(out_dir, "merged.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
