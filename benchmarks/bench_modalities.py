"""Cost of pathways for every modality model, tiny and base presets, on the CPU.

For each (modality, preset) it measures side by side in one process, with interleaved rounds
and medians (see bench_pathway.py): training-step time with pathways (trainable W') and with
frozen W' over the plain model, merged inference time over plain, and the peak-RSS growth of a
short training run of each kind (each in its own subprocess).

Usage:
    python benchmarks/bench_modalities.py [--presets tiny base] [--modalities image video point audio]
        [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import m2pt  # noqa: E402
from benchmarks.bench_pathway import median_times, train_step_fn as train_step  # noqa: E402

BATCH = {"tiny": 16, "base": 2}
VARIANTS = ("plain", "pathway", "frozen")


def build(variant: str, modality: str, preset: str) -> torch.nn.Module:
    """``plain``, ``pathway`` (trainable W'), ``frozen`` (frozen W') or ``merged``."""
    torch.manual_seed(0)
    target = m2pt.create_model(modality, preset, num_classes=10)
    if variant == "plain":
        return target
    aux = m2pt.create_model(modality, preset, num_classes=10)
    model = m2pt.add_pathways(target, aux, train_aux=variant != "frozen", scale_init=1e-2)
    return m2pt.merge_pathways(model) if variant == "merged" else model


def peak_memory_mib(variant: str, modality: str, preset: str, batch: int) -> float:
    """Peak RSS growth of a fresh process that builds ``variant`` and runs two training steps."""
    code = (
        "import sys; sys.path.insert(0, '.');"
        "from benchmarks.bench_modalities import build, train_step;"
        "rss = lambda key: int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1]);"
        "base = rss('VmRSS:'); open('/proc/self/clear_refs', 'w').write('5');"
        f"m = build({variant!r}, {modality!r}, {preset!r}).train(); s = train_step(m, {batch}); s(); s();"
        "print(rss('VmHWM:') - base)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def measure(modality: str, preset: str, rounds: int) -> dict[str, object]:
    batch = BATCH[preset]
    models = {v: build(v, modality, preset).train() for v in VARIANTS}
    train = median_times({v: train_step(m, batch) for v, m in models.items()}, rounds=rounds)
    plain, merged = models["plain"].eval(), m2pt.merge_pathways(models["pathway"]).eval()
    x = torch.randn(batch, *plain.pretrained_cfg["input_size"])
    with torch.inference_mode():
        infer = median_times({"plain": lambda: plain(x), "merged": lambda: merged(x)}, rounds=rounds)
    del models, plain, merged
    memory = {v: peak_memory_mib(v, modality, preset, batch) for v in VARIANTS}
    return {"modality": modality, "preset": preset, "batch": batch, "train_step_s": train, "inference_s": infer,
            "peak_rss_growth_mib": memory,
            "train_pathway_over_plain": train["pathway"] / train["plain"],
            "train_frozen_over_plain": train["frozen"] / train["plain"],
            "inference_merged_over_plain": infer["merged"] / infer["plain"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "base"], choices=list(BATCH))
    parser.add_argument("--modalities", nargs="+", default=["image", "video", "point", "audio"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| modality | preset | batch | train step plain | pathway / plain | frozen W' / plain "
          "| merged / plain inference | peak RSS growth plain / pathway / frozen (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for preset in args.presets:
        for modality in args.modalities:
            r = measure(modality, preset, args.rounds)
            rows.append(r)
            m = r["peak_rss_growth_mib"]
            print(f"| {modality} | {preset} | {r['batch']} | {r['train_step_s']['plain']:.2f} s "
                  f"| {r['train_pathway_over_plain']:.3f} | {r['train_frozen_over_plain']:.3f} "
                  f"| {r['inference_merged_over_plain']:.3f} | {m['plain']:.0f} / {m['pathway']:.0f} / {m['frozen']:.0f} |",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
