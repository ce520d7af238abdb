"""Time the generation and the loading throughput of the built-in datasets.

Usage: ``python -m m2pt.data.benchmark --root /tmp/m2pt-bench`` (use an empty root to time
generation; an existing one times only loading).
"""

from __future__ import annotations

import argparse
import time

from m2pt.data.factory import MODALITIES, builtin_dataset

DEMO_SIZES = {
    "image": {"train_size": 12000, "test_size": 2000},
    "audio": {"train_size": 800, "test_size": 200},
    "point": {"train_size": 800, "test_size": 200},
    "video": {"train_size": 400, "test_size": 100},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True, help="cache folder to generate into")
    parser.add_argument("--modalities", nargs="+", default=list(MODALITIES))
    parser.add_argument("--max-items", type=int, default=2000, help="items read per dataset")
    args = parser.parse_args()
    for modality in args.modalities:
        start = time.perf_counter()
        dataset = builtin_dataset(modality, "train", root=args.root, **DEMO_SIZES[modality])
        generated = time.perf_counter() - start
        count = min(len(dataset), args.max_items)
        start = time.perf_counter()
        for index in range(count):
            dataset[index]
        rate = count / (time.perf_counter() - start)
        print(f"{modality:6s} {type(dataset).__name__:20s} sizes={DEMO_SIZES[modality]} "
              f"generate+open={generated:6.1f}s  load={rate:8.0f} items/s "
              f"({count} items, 1 process)", flush=True)


if __name__ == "__main__":
    main()
