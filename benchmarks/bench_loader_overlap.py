"""How long the training process waits for data when its step leaves the CPU free, as a GPU step does.

Run: PYTHONPATH=. python benchmarks/bench_loader_overlap.py [--images 128] [--batch 16] [--step 0.25]
[--rounds 3] [--workers 1]

On a CPU-only machine the training step and the loader workers compete for the same cores, so
the step rate of ``bench_loader_finetune.py`` shows little of what workers do next to a GPU. Here
the "step" is a sleep of ``--step`` seconds (the training process idles while the accelerator
computes): with ``workers=0`` every batch is decoded and augmented (MAE pipeline, JPEGs from
``benchmarks/jpeg_folder.py``) between steps; with workers it is prepared during the previous
steps. Prints the epoch time and the time spent waiting for batches, per round and side.
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.jpeg_folder import write_jpeg_folder
from m2pt.data import ImageFolderDataset
from m2pt.train.loader import TrainLoader


def epoch_times(loader: TrainLoader, batches: list[list[int]], epoch: int, step: float) -> tuple[float, float]:
    """(epoch seconds, seconds spent waiting for batches)."""
    started, waiting = time.perf_counter(), 0.0
    loaded = loader.epoch(epoch, batches)
    for _ in batches:
        asked = time.perf_counter()
        next(loaded)
        waiting += time.perf_counter() - asked
        time.sleep(step)
    return time.perf_counter() - started, waiting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--step", type=float, default=0.25, help="seconds of a simulated accelerator step")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpeg_folder(Path(tmp), args.images, splits=("train",))
        dataset = ImageFolderDataset(root, "train", augment="mae")
        batches = [list(range(i, i + args.batch)) for i in range(0, args.images - args.batch + 1, args.batch)]
        sides = {0: TrainLoader(dataset, 0, 0), args.workers: TrainLoader(dataset, 0, args.workers)}
        for loader in sides.values():
            list(loader.epoch(0, batches[:1]))  # start the workers
        results: dict[int, list[tuple[float, float]]] = {w: [] for w in sides}
        for round_index in range(args.rounds):
            for workers, loader in sides.items():
                results[workers].append(epoch_times(loader, batches, round_index + 1, args.step))
                epoch, waiting = results[workers][-1]
                print(f"round {round_index + 1}: workers={workers}: epoch {epoch:.2f} s, waiting for data "
                      f"{waiting:.2f} s ({len(batches)} steps of {args.step} s)", flush=True)
        for loader in sides.values():
            loader.close()
        main_epoch = statistics.median(e for e, _ in results[0])
        worker_epoch = statistics.median(e for e, _ in results[args.workers])
        print(f"median epoch: {main_epoch:.2f} s with main-process loading, {worker_epoch:.2f} s with "
              f"{args.workers} worker(s): {main_epoch / worker_epoch:.2f}x the step rate; ideal "
              f"{main_epoch / (len(batches) * args.step):.2f}x")


if __name__ == "__main__":
    main()
