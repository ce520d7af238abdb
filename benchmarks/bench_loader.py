"""Image pipeline throughput (JPEG decode + MAE augmentation): m2pt's loader vs timm's, and worker scaling.

Run: PYTHONPATH=. python benchmarks/bench_loader.py [--images 256] [--rounds 3] [--workers 0 1 2]

Both sides read the same ImageFolder of generated JPEGs (``benchmarks/jpeg_folder.py``) with the
same transform (timm ``create_transform``: RandomResizedCrop 224, flip, RandAugment
``rand-m9-mstd0.5-inc1``, random erasing 0.25, bicubic; the posterize work-around applied to
both, since timm's own op fails under Pillow 13) and the same number of workers, batch 32:

* m2pt: ``TrainLoader`` over ``ImageFolderDataset(augment="mae")`` (items seeded per key);
* timm: ``timm.data.create_loader`` over ``timm.data.ImageDataset`` (no GPU prefetcher).

Each loader is built once (persistent workers) and warmed up by one epoch; then the rounds
alternate between the sides (in turn first), one epoch each, and the ratio is the median of the
per-round ratios. Prints images/s per side and worker count, and m2pt / timm; also the CPU time per image
of the loading process and its workers (throughput at equal CPU, insensitive to other load on a
shared machine, which wall-clock rates are not). The two loaders draw different random
augmentations, whose cost varies (crop area, RandAugment ops); a last measurement runs both
datasets in this process with the same seeds per image, so they make the same choices.
"""
import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.jpeg_folder import write_jpeg_folder
from m2pt.data import ImageFolderDataset
from m2pt.data.augment.timm_fixes import fix_posterize
from m2pt.train.loader import TrainLoader

BATCH = 32
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def cpu_seconds(loader) -> float:
    """CPU time so far of this process and of the loader's (persistent) worker processes."""
    import psutil

    processes = [psutil.Process()] + [psutil.Process(w.pid) for w in getattr(loader._iterator, "_workers", [])]
    return sum(p.cpu_times().user + p.cpu_times().system for p in processes)


def m2pt_epoch(root: Path, workers: int, images: int):
    loader = TrainLoader(ImageFolderDataset(root, "train", augment="mae"), seed=0, workers=workers)
    batches = [list(range(i, i + BATCH)) for i in range(0, images - BATCH + 1, BATCH)]
    epoch = iter(range(10**6))

    def run() -> int:
        return sum(len(x) for x, _ in loader.epoch(next(epoch), batches))
    return run, loader.close, lambda: cpu_seconds(loader.loader)


def timm_epoch(root: Path, workers: int, images: int):
    import torch
    from timm.data import ImageDataset, create_loader

    loader = create_loader(ImageDataset(str(root / "train")), input_size=(3, 224, 224), batch_size=BATCH,
                           is_training=True, auto_augment="rand-m9-mstd0.5-inc1", re_prob=0.25, re_mode="pixel",
                           re_count=1, color_jitter=None, interpolation="bicubic", mean=MEAN, std=STD,
                           num_workers=workers, use_prefetcher=False, persistent_workers=workers > 0,
                           device=torch.device("cpu"))
    fix_posterize(loader.dataset.transform)

    def run() -> int:
        return sum(len(x) for x, _ in loader)
    return run, lambda: None, lambda: cpu_seconds(loader)


def same_choice_costs(root: Path, images: int, rounds: int) -> dict[str, float]:
    """CPU ms per image of m2pt's and timm's datasets making the same random choices (same seeds)."""
    from timm.data import ImageDataset

    from m2pt.data.augment.images import mae_train_transform
    from m2pt.data.seeding import seeded_rngs

    ours = ImageFolderDataset(root, "train", augment="mae")
    theirs = ImageDataset(str(root / "train"), transform=mae_train_transform(224, MEAN, STD))
    where = {str(path): i for i, (path, _) in enumerate(theirs.reader.samples)}
    pairs = [(i, where[path]) for i, (path, _) in enumerate(ours.samples)][:images]
    costs: dict[str, list[float]] = {"m2pt": [], "timm": []}
    for round_index in range(rounds):
        for name, dataset, side in (("m2pt", ours, 0), ("timm", theirs, 1))[::1 if round_index % 2 == 0 else -1]:
            started = time.process_time()
            for number, pair in enumerate(pairs):
                with seeded_rngs(1000 * round_index + number):
                    dataset[pair[side]]
            costs[name].append(1000 * (time.process_time() - started) / len(pairs))
    return {name: statistics.median(values) for name, values in costs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpeg_folder(Path(tmp), args.images, splits=("train",))
        results = {}
        for workers in args.workers:
            sides = {"m2pt": m2pt_epoch(root, workers, args.images), "timm": timm_epoch(root, workers, args.images)}
            for run, _, _ in sides.values():
                run()  # warm-up: start the workers, fill the page cache
            rates: dict[str, list[float]] = {name: [] for name in sides}
            cpu_costs: dict[str, list[float]] = {name: [] for name in sides}
            for round_index in range(args.rounds):
                order = list(sides) if round_index % 2 == 0 else list(sides)[::-1]
                for name in order:
                    run, _, cpu = sides[name]
                    started, cpu_started = time.perf_counter(), cpu()
                    count = run()
                    rates[name].append(count / (time.perf_counter() - started))
                    cpu_costs[name].append((cpu() - cpu_started) / count)
            for _, close, _ in sides.values():
                close()
            ratio = statistics.median(m / t for m, t in zip(rates["m2pt"], rates["timm"]))
            results[workers] = {"m2pt_images_per_s": statistics.median(rates["m2pt"]),
                                "timm_images_per_s": statistics.median(rates["timm"]), "ratio": ratio,
                                "rounds": rates}
            cpu_ratio = statistics.median(t / m for m, t in zip(cpu_costs["m2pt"], cpu_costs["timm"]))
            results[workers]["cpu_ms_per_image"] = {k: 1000 * statistics.median(v) for k, v in cpu_costs.items()}
            results[workers]["cpu_ratio"] = cpu_ratio
            line = (f"workers={workers}: m2pt {results[workers]['m2pt_images_per_s']:.0f} img/s, "
                    f"timm {results[workers]['timm_images_per_s']:.0f} img/s, m2pt/timm {ratio:.3f}; "
                    f"CPU ms per image m2pt {results[workers]['cpu_ms_per_image']['m2pt']:.1f}, "
                    f"timm {results[workers]['cpu_ms_per_image']['timm']:.1f}, timm/m2pt {cpu_ratio:.3f}")
            print(line, flush=True)
        same = same_choice_costs(root, args.images, args.rounds)
        results["same_choices_cpu_ms_per_image"] = same
        print(f"same random choices, main process: CPU ms per image m2pt {same['m2pt']:.2f}, timm {same['timm']:.2f}, "
              f"timm/m2pt {same['timm'] / same['m2pt']:.3f}", flush=True)
        base = results[min(args.workers)]["m2pt_images_per_s"]
        print("m2pt scaling: " + ", ".join(f"{w} workers {results[w]['m2pt_images_per_s'] / base:.2f}x"
                                          for w in args.workers))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
