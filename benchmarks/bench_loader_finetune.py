"""Whole training step rate of ``m2pt finetune`` with loader workers vs main-process loading.

Run: PYTHONPATH=. python benchmarks/bench_loader_finetune.py [--images 256] [--rounds 2] [--workers 1]
[--threads 1]

Fine-tunes the same small ViT (224 x 224 input, patch 32, width 192, depth 6: 50 tokens, so that
loading a batch costs a sizeable share of a step, as it does next to a GPU) for one epoch on an
ImageFolder of generated JPEGs (``benchmarks/jpeg_folder.py``) with MAE's augmentation
(``augment="mae"``, mixup 0.8 / cutmix 1.0), batch 32, once with ``workers=0`` (every batch decoded
in the training process, as before loader workers) and once with ``--workers`` worker processes,
alternating for ``--rounds`` rounds. The step rate is the number of optimiser steps over the epoch's
training time (``epoch_seconds`` in metrics.jsonl: worker start-up included, evaluation excluded).
Also checks that both sides end with the same weights, since the worker count must not change a run.
"""
import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.jpeg_folder import write_jpeg_folder
from m2pt.io import load_tensor_file
from m2pt.train.config import TrainConfig
from m2pt.train.finetuning import finetune

MODEL = {"img_size": 224, "patch_size": 32, "embed_dim": 192, "depth": 6, "num_heads": 3, "in_chans": 3}


def step_rate(root: Path, output: Path, workers: int, batch: int) -> tuple[float, Path]:
    config = TrainConfig(modality="image", preset="tiny", model_overrides=dict(MODEL), data=str(root),
                         augment="mae", mixup=0.8, cutmix=1.0, label_smoothing=0.1, output=str(output), epochs=1,
                         batch_size=batch, lr=1e-3, warmup_epochs=0.0, workers=workers, amp=False, seed=0)
    finetune(config, quiet=True)
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    epoch = next(r for r in records if "epoch_seconds" in r)
    return epoch["step"] / epoch["epoch_seconds"], output / "model.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the training process (1: one core trains, the others load)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpeg_folder(Path(tmp) / "data", args.images)
        rates: dict[int, list[float]] = {0: [], args.workers: []}
        weights = {}
        for round_index in range(args.rounds):
            for workers in rates:
                rate, model = step_rate(root, Path(tmp) / f"run{round_index}_w{workers}", workers, args.batch)
                rates[workers].append(rate)
                weights[workers] = load_tensor_file(model)
                print(f"round {round_index + 1}: workers={workers}: {rate:.3f} steps/s "
                      f"({rate * args.batch:.1f} images/s)", flush=True)
        same = all(torch.equal(weights[0][k], weights[args.workers][k]) for k in weights[0])
        ratio = statistics.median(w / m for w, m in zip(rates[args.workers], rates[0]))
        print(f"step rate with {args.workers} worker(s) / main-process loading: {ratio:.2f}x "
              f"(torch threads {torch.get_num_threads()}); same final weights: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rates": rates, "ratio": ratio, "same_weights": same}, indent=2) + "\n")


if __name__ == "__main__":
    main()
