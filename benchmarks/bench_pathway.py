"""Cost of pathways on a timm ViT-S/16 at batch 32, measured side by side in one process.

Prints:
- merged-model inference time / plain-model inference time (goal ≤ 1.02: no inference cost);
- max |merged - unmerged| output difference with random non-zero λ and W';
- training-step time with pathways / without, with trainable W' (goal ≤ 1.10; the paper
  reports +35%) and with frozen W' (goal ≤ 1.05);
- peak memory (RSS) of a training run of each kind, each in its own subprocess.

Timings interleave the variants round by round and report medians, so a busy machine slows
all of them alike.

Usage:
    python benchmarks/bench_pathway.py [--model vit_small_patch16_224] [--batch 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Callable

import timm
import torch
import torch.nn.functional as F

import m2pt
from m2pt.pathway import Pathway


def build(variant: str, model_name: str) -> torch.nn.Module:
    """``plain``, ``pathway`` (trainable W'), ``frozen`` (frozen W') or ``merged``."""
    torch.manual_seed(0)
    target = timm.create_model(model_name, num_classes=10)
    if variant == "plain":
        return target
    aux = timm.create_model(model_name)
    model = m2pt.add_pathways(target, aux, train_aux=variant != "frozen")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, Pathway):
                module.scale.fill_(float(torch.rand((), generator=generator)) * 0.05)
    return m2pt.merge_pathways(model) if variant == "merged" else model


def train_step_fn(model: torch.nn.Module, batch: int) -> Callable[[], None]:
    """One AdamW step on random inputs of the model's ``pretrained_cfg["input_size"]``, 10 classes."""
    optimizer = torch.optim.AdamW(m2pt.param_groups(model, weight_decay=0.05), lr=1e-4)
    x = torch.randn(batch, *model.pretrained_cfg["input_size"])
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def median_times(fns: dict[str, Callable[[], None]], rounds: int, warmup: int = 1) -> dict[str, float]:
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_memory_mib(variant: str, model_name: str, batch: int) -> float:
    """Peak RSS growth of a fresh process that builds ``variant`` and runs two training steps.

    The peak is reset (``/proc/self/clear_refs``) after imports, so it counts the model,
    optimizer state and activations, not the libraries.
    """
    code = (
        "import sys; sys.path.insert(0, '.');"
        "from benchmarks.bench_pathway import build, train_step_fn;"
        "rss = lambda key: int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1]);"
        "base = rss('VmRSS:'); open('/proc/self/clear_refs', 'w').write('5');"
        f"m = build({variant!r}, {model_name!r}); s = train_step_fn(m, {batch}); s(); s();"
        "print(rss('VmHWM:') - base)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit_small_patch16_224")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.model}, batch {args.batch}")

    pathway = build("pathway", args.model).eval()
    plain_eval = build("plain", args.model).eval()
    merged = m2pt.merge_pathways(pathway).eval()
    x = torch.randn(args.batch, 3, 224, 224)
    with torch.inference_mode():
        max_diff = (merged(x) - pathway(x)).abs().max().item()
        infer = median_times({"plain": lambda: plain_eval(x), "merged": lambda: merged(x),
                              "unmerged": lambda: pathway(x)}, rounds=args.rounds)
    del pathway, merged, plain_eval

    train = median_times({v: train_step_fn(build(v, args.model).train(), args.batch)
                          for v in ("plain", "pathway", "frozen")}, rounds=args.rounds)
    memory = {v: peak_memory_mib(v, args.model, args.batch) for v in ("plain", "pathway", "frozen")}

    results = {
        "inference_s": infer, "train_step_s": train, "peak_rss_mib": memory,
        "inference_merged_over_plain": infer["merged"] / infer["plain"],
        "inference_unmerged_over_plain": infer["unmerged"] / infer["plain"],
        "train_pathway_over_plain": train["pathway"] / train["plain"],
        "train_frozen_aux_over_plain": train["frozen"] / train["plain"],
        "max_abs_diff_merged_vs_unmerged": max_diff,
    }
    print(f"inference  plain {infer['plain']*1e3:8.1f} ms | merged {infer['merged']*1e3:8.1f} ms "
          f"| unmerged {infer['unmerged']*1e3:8.1f} ms")
    print(f"  merged / plain        = {results['inference_merged_over_plain']:.3f}   (goal <= 1.02)")
    print(f"  unmerged / plain      = {results['inference_unmerged_over_plain']:.3f}")
    print(f"  max |merged-unmerged| = {max_diff:.2e}")
    print(f"train step plain {train['plain']:.2f} s | pathway {train['pathway']:.2f} s | frozen W' {train['frozen']:.2f} s")
    print(f"  pathway / plain       = {results['train_pathway_over_plain']:.3f}   (goal <= 1.10; paper +35%)")
    print(f"  frozen W' / plain     = {results['train_frozen_aux_over_plain']:.3f}   (goal <= 1.05)")
    print(f"peak RSS growth plain {memory['plain']:.0f} MiB | pathway {memory['pathway']:.0f} MiB "
          f"| frozen W' {memory['frozen']:.0f} MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
