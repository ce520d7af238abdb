"""Does a model trained on clean synthetic digits survive recording conditions, and the reverse?

    nice -n 15 .venv/bin/python scripts/audio_channel_check.py [--profile full|converged]
        [--epochs N] [--train-on clean realistic] [--output runs/audio-channel] [--seed 0]

Fine-tunes the tiny audio target from scratch at a reproduction profile's audio budget (``full``:
800 clips x 4 epochs, batch 16; ``converged``: 3,000 clips x 96 epochs, batch 32; ``--epochs``
overrides the epochs) on clean clips and on clips with ``augment="realistic"``, then tests each
model on both held-out-speaker test sets. Prints the table.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch


def main() -> None:
    from m2pt.checkpoints.export import load_model
    from m2pt.experiments.budgets import get_profile
    from m2pt.train.config import TrainConfig
    from m2pt.train.data import build_split
    from m2pt.train.finetuning import evaluate_model, finetune

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["full", "converged"], default="full")
    parser.add_argument("--train-on", nargs="+", choices=["clean", "realistic"], default=["clean", "realistic"])
    parser.add_argument("--output", default="runs/audio-channel")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="default: the profile's audio epochs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = get_profile(args.profile).finetune_options("audio")
    if args.epochs is not None:
        base["epochs"] = args.epochs
    conditions = {"clean": None, "realistic": "realistic"}
    options = {}
    for name, augment in conditions.items():
        o = copy.deepcopy(base)
        o["data_options"]["augment"] = augment
        options[name] = o
    table: dict[tuple[str, str], float] = {}
    for trained_on in args.train_on:
        o = options[trained_on]
        folder = Path(args.output) / f"{args.profile}-{o['epochs']}ep-train-{trained_on}-seed{args.seed}"
        config = TrainConfig(**{**o, "output": str(folder), "seed": args.seed})
        final = finetune(config, overwrite=True, quiet=True)
        model = load_model(folder / "model.safetensors")
        for tested_on, test_options in options.items():
            test_config = TrainConfig(**{**test_options, "output": str(folder), "seed": args.seed})
            metrics = evaluate_model(model, build_split(test_config, "test"), torch.device("cpu"), amp=False)
            table[(trained_on, tested_on)] = metrics["top1"]
        print(f"trained on {trained_on}: own test top-1 {final['top1']:.1f} %", flush=True)
    print("\n| trained on \\ tested on | " + " | ".join(options) + " |")
    print("|---|" + "---|" * len(options))
    for trained_on in args.train_on:
        print(f"| {trained_on} | " + " | ".join(f"{table[(trained_on, t)]:.1f} %" for t in options) + " |")


if __name__ == "__main__":
    main()
