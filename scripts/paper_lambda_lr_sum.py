"""λ's learning-rate sum under the paper's ImageNet fine-tuning recipe (configs/paper/).

    .venv/bin/python scripts/paper_lambda_lr_sum.py [configs/paper/in1k_mae_m2pt_point.json] [--processes 8]

Reads the recipe (blr, batch per process, epochs, warm-up, min lr, layer decay, preset), counts the
steps on ImageNet-1K's 1,281,167 training images, sums m2pt's per-step learning rate and multiplies
by each λ's ``lr_scale``, read from the real parameter groups of a ViT-B with pathways.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from m2pt.experiments.lr_budget import lambda_lr_scales, lambda_lr_sums, schedule_lr_sum, steps_per_epoch

IMAGENET_TRAIN_IMAGES = 1_281_167


def scales_from_param_groups(preset: str, layer_decay: float) -> list[float]:
    """λ's ``lr_scale`` per block, from :func:`m2pt.pathway.param_groups` on a real model."""
    from m2pt import create_model
    from m2pt.pathway import add_pathways, param_groups

    model = create_model("image", preset, num_classes=1000)
    add_pathways(model, {k: torch.zeros_like(v) for k, v in model.state_dict().items() if k.startswith("blocks.")})
    scale_groups = [g for g in param_groups(model, layer_decay=layer_decay) if g["name"].endswith("_scale")]
    return [g["lr_scale"] for g in scale_groups]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default="configs/paper/in1k_mae_m2pt_point.json")
    parser.add_argument("--processes", type=int, default=8, help="processes (GPUs) of the recipe (8 x 128 = 1024)")
    args = parser.parse_args()
    options = json.loads(Path(args.config).read_text())
    options.setdefault("lr", None)
    per_epoch = steps_per_epoch(IMAGENET_TRAIN_IMAGES, options["batch_size"], options.get("accum_steps", 1),
                                args.processes)
    base_lr = options["blr"] * options["batch_size"] * options.get("accum_steps", 1) * args.processes / 256
    total = per_epoch * options["epochs"]
    warmup = round(options["warmup_epochs"] * per_epoch)
    lr_sum = schedule_lr_sum(total, warmup, base_lr, options["min_lr"])
    sums = lambda_lr_sums(options, options.get("pathway"), train_items=IMAGENET_TRAIN_IMAGES,
                          world_size=args.processes)
    measured = scales_from_param_groups(options["preset"], options["layer_decay"])
    formula = lambda_lr_scales(len(sums), options["layer_decay"])
    assert len(measured) == len(formula) and all(abs(a - b) < 1e-12 for a, b in zip(measured, formula)), \
        (measured, formula)
    print(f"{args.config}: base lr {base_lr:g} (blr {options['blr']:g} x {options['batch_size']} x "
          f"{args.processes} / 256), {per_epoch} steps/epoch x {options['epochs']} epochs = {total} steps, "
          f"warm-up {warmup} steps, cosine to {options['min_lr']:g}")
    print(f"sum of the base learning rate over the run: {lr_sum:.1f}")
    print(f"layer decay {options['layer_decay']}: lr_scale of λ per block (from param_groups) "
          + ", ".join(f"{s:.3g}" for s in measured))
    print("λ's learning-rate sum per block: " + ", ".join(f"{s:.3g}" for s in sums))
    print(f"block 0: {sums[0]:.2f}; block {len(sums) - 1}: {sums[-1]:.1f}; mean over blocks: "
          f"{sum(sums) / len(sums):.1f}; without layer decay: {lr_sum:.1f}")


if __name__ == "__main__":
    main()
