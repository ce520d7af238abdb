"""How much of the pathway term ``λ W' x`` survives mixed precision, and what keeping it costs.

Under autocast, ``F.linear(x, W + λW')`` rounds the merged weight to bf16/fp16 before the
matmul. For a ViT-B-sized layer (768 -> 3072, weights of std 0.02, LayerNorm-like inputs)
with |λ| = 1e-3, this prints the cosine between the *effective* pathway term,
``out(λ) - out(λ=0)`` of each computation, and the exact float64 ``λ W' x``:

- ``merged`` (the default): the merged weight rounded once (bf16 and fp16 autocast);
- ``split`` (``PathwayConfig(split_under_autocast=True)``): ``W x`` and ``W' x`` as separate
  low-precision matmuls, ``λ`` applied and summed in float32.

Then the cost of ``split``: training-step time of a pathway ViT under CPU bf16 autocast,
split / merged (medians of interleaved rounds), and merged bf16 / float32 for reference.

Usage:
    python benchmarks/bench_pathway_precision.py [--model vit_small_patch16_224] [--img 112] [--batch 16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
import torch.nn.functional as F

import m2pt


def pathway_cosines(scale: float, device: str = "cpu", tokens: int = 2048, seed: int = 0) -> dict[str, float]:
    """Cosine of the effective pathway term with the exact one, per computation."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(3072, 768, generator=gen) * 0.02
    w_aux = torch.randn(3072, 768, generator=gen) * 0.02
    x = torch.randn(tokens, 768, generator=gen)
    exact = (scale * x.double() @ w_aux.double().T).flatten()
    results = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        with torch.autocast(device, dtype=dtype):
            merged = F.linear(x, w + scale * w_aux).float() - F.linear(x, w).float()
            split = (F.linear(x, w).float() + scale * F.linear(x, w_aux).float()) - F.linear(x, w).float()
        for kind, term in (("merged", merged), ("split", split)):
            results[f"{kind} {name}"] = F.cosine_similarity(term.double().flatten(), exact, dim=0).item()
        weight_term = ((w + scale * w_aux).to(dtype).double() - w.to(dtype).double()).flatten()
        results[f"weight only {name}"] = F.cosine_similarity(
            weight_term, (scale * w_aux.double()).flatten(), dim=0).item()
    return results


def layer_cosine(split: bool, scale: float = 1e-3) -> float:
    """The same cosine through m2pt's own pathway layer (``add_pathways``), bf16 CPU autocast."""
    torch.manual_seed(0)
    target, aux = torch.nn.Sequential(torch.nn.Linear(768, 3072)), torch.nn.Sequential(torch.nn.Linear(768, 3072))
    for layer in (target[0], aux[0]):
        torch.nn.init.normal_(layer.weight, std=0.02)
    m2pt.add_pathways(target, aux, layers=["0"], split_under_autocast=split)
    x = torch.randn(2048, 768)
    exact = scale * x.double() @ aux[0].weight.detach().double().T
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        zero = target(x).double()
        target[0].parametrizations.weight[0].scale.fill_(scale)
        term = target(x).double() - zero
    return F.cosine_similarity(term.flatten(), exact.flatten(), dim=0).item()


def step_time(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
              amp: bool) -> tuple[float, float]:
    """Wall and CPU seconds of one training step (CPU time is less sensitive to a shared machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit_small_patch16_224")
    parser.add_argument("--img", type=int, default=112)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for scale in (1e-2, 1e-3, 1e-4):
        shown = ", ".join(f"{k} {v:.4f}" for k, v in pathway_cosines(scale).items())
        print(f"|λ|={scale:g}: cosine with the exact pathway term: {shown}")
    print(f"m2pt layer, bf16 CPU autocast, |λ|=1e-3: merged {layer_cosine(False):.4f}, split {layer_cosine(True):.4f}")

    models, optimizers = {}, {}
    for variant in ("merged", "split"):
        torch.manual_seed(0)
        target = timm.create_model(args.model, num_classes=10, img_size=args.img)
        aux = timm.create_model(args.model, num_classes=10, img_size=args.img)
        models[variant] = m2pt.add_pathways(target, aux, split_under_autocast=variant == "split")
        optimizers[variant] = torch.optim.AdamW(m2pt.param_groups(models[variant]), lr=1e-4)
    x, y = torch.randn(args.batch, 3, args.img, args.img), torch.randint(0, 10, (args.batch,))
    runs = [("merged", True), ("split", True), ("merged", False)]
    times: dict[tuple[str, bool], list[tuple[float, float]]] = {run: [] for run in runs}
    for run in runs:  # warm-up
        step_time(models[run[0]], optimizers[run[0]], x, y, run[1])
    for _ in range(args.rounds):
        for run in runs:
            times[run].append(step_time(models[run[0]], optimizers[run[0]], x, y, run[1]))
    for index, clock in enumerate(("wall", "CPU")):
        median = {run: statistics.median(t[index] for t in samples) for run, samples in times.items()}
        print(f"{args.model} at {args.img}px, batch {args.batch}, train step, {clock} time (median of "
              f"{args.rounds}): merged bf16 {median[('merged', True)]:.3f} s, split bf16 "
              f"{median[('split', True)]:.3f} s, merged float32 {median[('merged', False)]:.3f} s")
        print(f"  split / merged (bf16 autocast): {median[('split', True)] / median[('merged', True)]:.2f}x; "
              f"merged bf16 / float32: {median[('merged', True)] / median[('merged', False)]:.2f}x")


if __name__ == "__main__":
    main()
