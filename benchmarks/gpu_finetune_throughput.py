"""Steps per second of ``m2pt finetune`` vs a minimal hand-written timm loop, on one GPU (issue 10).

What it measures (ViT-B/16, 224 px, JPEGs generated on local disk, DataLoader workers):

- ``m2pt finetune`` (the command, as a user runs it) in bf16 and fp16 vs a plain timm
  training loop (``timm.create_model``, torchvision ``ImageFolder`` + ``DataLoader``, AdamW,
  autocast, a ``GradScaler`` for fp16) on the same GPU, data and batch. Goal: m2pt / timm >= 0.95.
- pathways / plain step time under ``m2pt finetune`` (bf16). Goal <= 1.05 for the step
  itself (the paper reports +35% training time with trainable W').
- the cost of ``--split-under-autocast`` (the pathway term kept out of the bf16 weight):
  split / merged pathway step time.

Every variant runs in its own process, two epochs of ``--steps`` steps each; the second
epoch is timed (the first pays start-up, cuDNN autotuning, worker start). Variants are
interleaved over ``--rounds`` rounds and medians reported, so a busy machine slows all alike.

``--dry-run`` runs the same code paths on the CPU with tiny sizes (a few seconds; no GPU):
it checks that the script works, not speed.

Usage:
    python benchmarks/gpu_finetune_throughput.py --out /tmp/throughput [--rounds 3] [--steps 50]
    python benchmarks/gpu_finetune_throughput.py --out /tmp/throughput-dry --dry-run
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def make_jpegs(root: Path, classes: int, per_class: int, size: int, seed: int = 0) -> Path:
    """An ImageFolder tree of random-noise JPEGs (train/ and val/), written once."""
    import numpy as np
    from PIL import Image

    marker = root / f".done-{classes}-{per_class}-{size}"
    if marker.is_file():
        return root
    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("val", max(1, per_class // 8))):
        for label in range(classes):
            folder = root / split / f"class{label:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index:05d}.jpg", quality=90)
    marker.touch()
    return root


def sizes(dry_run: bool) -> dict[str, Any]:
    if dry_run:
        return dict(device="cpu", image=32, batch=8, steps=3, workers=2, classes=4, per_class=8,
                    m2pt_model=["--preset", "tiny", "--model-override", "img_size=32", "--model-override",
                                "patch_size=8", "--model-override", "in_chans=3"],
                    timm_model=dict(model_name="vit_tiny_patch16_224", img_size=32, patch_size=8))
    return dict(device="cuda", image=224, batch=128, steps=50, workers=10, classes=100, per_class=130,
                m2pt_model=["--preset", "base"], timm_model=dict(model_name="vit_base_patch16_224"))


def _cli_supports(flag: str) -> bool:
    help_text = subprocess.run([sys.executable, "-m", "m2pt.cli", "finetune", "--help"], cwd=ROOT,
                               capture_output=True, text=True).stdout
    return flag in help_text


def run_m2pt(data: Path, out: Path, cfg: dict[str, Any], amp_dtype: str, aux: Path | None, split: bool,
             steps: int) -> float:
    """Steps per second of the second epoch of ``m2pt finetune``."""
    command = [sys.executable, "-m", "m2pt.cli", "finetune", "--modality", "image", *cfg["m2pt_model"],
               "--data", str(data), "--data-option", f"image_size={cfg['image']}", "--output", str(out),
               "--overwrite", "--quiet", "--epochs", "2", "--max-train-batches", str(steps),
               "--batch-size", str(cfg["batch"]), "--global-batch-size", str(cfg["batch"]), "--lr", "1e-4",
               "--warmup-epochs", "0", "--eval-every", "0", "--device", cfg["device"], "--amp-dtype", amp_dtype]
    if cfg["device"] == "cpu":
        command.append("--no-amp")
    if _cli_supports("--workers"):
        command += ["--workers", str(cfg["workers"])]
    if aux is not None:
        command += ["--aux", str(aux)] + (["--split-under-autocast"] if split else [])
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"m2pt finetune failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    second = [r for r in records if r.get("epoch") == 2 and "epoch_seconds" in r][-1]
    return steps / second["epoch_seconds"]


def timm_worker(data: Path, cfg: dict[str, Any], amp_dtype: str, steps: int) -> float:
    """The reference: a minimal timm training loop; steps per second of its second epoch."""
    import timm
    import torch
    import torch.nn.functional as F
    from torchvision import datasets, transforms

    device = torch.device(cfg["device"])
    transform = transforms.Compose([transforms.Resize((cfg["image"], cfg["image"])), transforms.ToTensor(),
                                    transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    dataset = datasets.ImageFolder(str(data / "train"), transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg["batch"], shuffle=True, drop_last=True,
                                         num_workers=cfg["workers"], pin_memory=device.type == "cuda",
                                         persistent_workers=True)
    model = timm.create_model(num_classes=len(dataset.classes), drop_path_rate=0.1, **cfg["timm_model"]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp_dtype]
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == "fp16")
    seconds = []
    for _ in range(2):
        started, done = time.perf_counter(), 0
        loss_sum = torch.zeros((), device=device)
        while done < steps:
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
                    loss = F.cross_entropy(model(x), y)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                loss_sum += loss.detach()
                done += 1
                if done == steps:
                    break
        loss_sum.item()
        seconds.append(time.perf_counter() - started)
    return steps / seconds[1]


def write_aux(path: Path, cfg: dict[str, Any]) -> Path:
    """An auxiliary checkpoint of the target's shape (random weights: speed does not depend on them)."""
    if path.is_file():
        return path
    subprocess.run([sys.executable, "-c", (
        "import sys, m2pt\n"
        "args = sys.argv[2:]\n"
        "overrides = dict(a.split('=') for a in args[3::2]) if len(args) > 2 else {}\n"
        "overrides = {k: int(v) for k, v in overrides.items()}\n"
        "m2pt.save_model(m2pt.create_model('image', args[1], num_classes=0, **overrides), sys.argv[1])\n"),
        str(path), *cfg["m2pt_model"]], cwd=ROOT, check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="working folder (JPEGs, runs, results.json)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, help="steps per timed epoch (default 50; 3 with --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the script only")
    parser.add_argument("--timm-worker", nargs=2, metavar=("DATA", "AMP_DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    cfg = sizes(args.dry_run)
    steps = args.steps or cfg["steps"]
    if args.timm_worker:
        print(json.dumps({"steps_per_second": timm_worker(Path(args.timm_worker[0]), cfg, args.timm_worker[1],
                                                          steps)}))
        return

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = make_jpegs(out / "jpegs", cfg["classes"], cfg["per_class"], cfg["image"] + cfg["image"] // 7)
    aux = write_aux(out / "aux.safetensors", cfg)

    def timm_side(amp_dtype: str) -> float:
        command = [sys.executable, str(Path(__file__).resolve()), "--out", str(out), "--steps", str(steps),
                   "--timm-worker", str(data), amp_dtype] + (["--dry-run"] if args.dry_run else [])
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"timm loop failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])["steps_per_second"]

    variants = {
        "m2pt plain bf16": lambda: run_m2pt(data, out / "run", cfg, "bf16", None, False, steps),
        "timm plain bf16": lambda: timm_side("bf16"),
        "m2pt plain fp16": lambda: run_m2pt(data, out / "run", cfg, "fp16", None, False, steps),
        "timm plain fp16": lambda: timm_side("fp16"),
        "m2pt pathways bf16": lambda: run_m2pt(data, out / "run", cfg, "bf16", aux, False, steps),
        "m2pt pathways bf16 split": lambda: run_m2pt(data, out / "run", cfg, "bf16", aux, True, steps),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(args.rounds):
        for name, run in variants.items():
            rates[name].append(run())
            print(f"round {round_index + 1}: {name}: {rates[name][-1]:.3f} steps/s", flush=True)
    median = {name: statistics.median(values) for name, values in rates.items()}
    ratios = {
        "m2pt / timm, bf16 (goal >= 0.95)": median["m2pt plain bf16"] / median["timm plain bf16"],
        "m2pt / timm, fp16 (goal >= 0.95)": median["m2pt plain fp16"] / median["timm plain fp16"],
        "pathways / plain step time, bf16 (goal <= 1.05)": median["m2pt plain bf16"] / median["m2pt pathways bf16"],
        "split / merged pathway step time, bf16": median["m2pt pathways bf16"] / median["m2pt pathways bf16 split"],
    }
    for name, value in ratios.items():
        print(f"{name}: {value:.3f}")
    result = {"dry_run": args.dry_run, "steps": steps, "batch": cfg["batch"], "rates": rates, "median": median,
              "ratios": ratios}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
