"""GPU paths of the pathway core: CUDA, bf16 autocast training, merge on the GPU, and speed.

Runs on one CUDA device (the project itself never needs one):
1. ViT-B/16 target + auxiliary on CUDA, pathways attached, a few AdamW steps under bf16
   autocast: the loss is finite and every λ moves.
2. Merge on the GPU (float32 model) and in bf16 (bf16 model; merged in float32, cast once):
   merged vs unmerged outputs.
3. Side-by-side timings in one process (medians of interleaved rounds): train step with
   pathways (trainable and frozen W') / without, merged inference / plain, peak memory.

Usage:
    python benchmarks/gpu_check.py [--batch 64] [--rounds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Callable

import timm
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import m2pt  # noqa: E402

MODEL = "vit_base_patch16_224"


def build(variant: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    target = timm.create_model(MODEL, num_classes=100)
    if variant != "plain":
        target = m2pt.add_pathways(target, timm.create_model(MODEL), train_aux=variant != "frozen", scale_init=1e-2)
    return target.to(device)


def train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], float]:
    optimizer = torch.optim.AdamW(m2pt.param_groups(model, weight_decay=0.05), lr=1e-4, fused=True)

    def step() -> float:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def cuda_median(fns: dict[str, Callable], rounds: int) -> dict[str, float]:
    for fn in fns.values():
        fn(), fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times[name].append(start.elapsed_time(end))
    return {k: statistics.median(v) for k, v in times.items()}


def peak_train_memory(variant: str, x: torch.Tensor, y: torch.Tensor) -> float:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = build(variant, x.device)
    step = train_step(model, x, y)
    step(), step()
    peak = torch.cuda.max_memory_allocated() / 2**30
    del model, step
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    device = torch.device("cuda")
    print(f"torch {torch.__version__}, timm {timm.__version__}, {torch.cuda.get_device_name()}")
    x = torch.randn(args.batch, 3, 224, 224, device=device)
    y = torch.randint(0, 100, (args.batch,), device=device)
    results: dict[str, object] = {"device": torch.cuda.get_device_name(), "batch": args.batch}

    model = build("pathway", device)
    scales_before = torch.stack([p.detach().clone() for n, p in model.named_parameters() if n.endswith(".scale")])
    step = train_step(model, x, y)
    losses = [step() for _ in range(5)]
    scales_after = torch.stack([p.detach() for n, p in model.named_parameters() if n.endswith(".scale")])
    moved = int((scales_after != scales_before).sum())
    print(f"[1] bf16 autocast steps: losses {[round(v, 4) for v in losses]}; λ moved in {moved}/{scales_after.numel()} layers")
    results["bf16_losses"] = losses
    results["scales_moved"] = f"{moved}/{scales_after.numel()}"
    assert all(map(lambda v: v == v and abs(v) < 1e4, losses)) and moved == scales_after.numel()

    model.eval()
    with torch.no_grad():
        unmerged = model(x[:16])
        merged = m2pt.merge_pathways(model)(x[:16])
        results["fp32_max_abs_diff"] = (merged - unmerged).abs().max().item()
        bf16_model = model.to(torch.bfloat16)
        bf16_unmerged = bf16_model(x[:16].bfloat16()).float()
        bf16_merged = m2pt.merge_pathways(bf16_model)(x[:16].bfloat16()).float()
        results["bf16_max_abs_diff"] = (bf16_merged - bf16_unmerged).abs().max().item()
        results["bf16_logit_scale"] = bf16_unmerged.abs().max().item()
    print(f"[2] merged vs unmerged on GPU: fp32 {results['fp32_max_abs_diff']:.2e}; "
          f"bf16 {results['bf16_max_abs_diff']:.2e} (logits up to {results['bf16_logit_scale']:.2f})")
    del model, bf16_model, step

    models = {v: build(v, device) for v in ("plain", "pathway", "frozen")}
    train = cuda_median({v: train_step(m, x, y) for v, m in models.items()}, args.rounds)
    merged_model = m2pt.merge_pathways(models["pathway"]).eval()
    plain = models["plain"].eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        infer = cuda_median({"plain": lambda: plain(x), "merged": lambda: merged_model(x)}, args.rounds)
    del models, merged_model, plain
    memory = {v: peak_train_memory(v, x, y) for v in ("plain", "pathway", "frozen")}
    results.update(train_ms=train, inference_ms=infer, peak_train_gib=memory,
                   train_pathway_over_plain=train["pathway"] / train["plain"],
                   train_frozen_over_plain=train["frozen"] / train["plain"],
                   inference_merged_over_plain=infer["merged"] / infer["plain"])
    print(f"[3] train step (bf16 autocast, batch {args.batch}): plain {train['plain']:.1f} ms, pathway "
          f"{train['pathway']:.1f} ms ({results['train_pathway_over_plain']:.3f}x), frozen W' {train['frozen']:.1f} ms "
          f"({results['train_frozen_over_plain']:.3f}x)")
    print(f"    inference: plain {infer['plain']:.1f} ms, merged {infer['merged']:.1f} ms "
          f"({results['inference_merged_over_plain']:.3f}x)")
    print(f"    peak memory: plain {memory['plain']:.2f} GiB, pathway {memory['pathway']:.2f} GiB, "
          f"frozen W' {memory['frozen']:.2f} GiB")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
