"""Parallel, deterministic training batches: a ``DataLoader`` over the epoch's batch list.

The loop decides which items form each batch (:func:`m2pt.train.loop.epoch_batches`); this
module loads them, in ``workers`` processes or in the main process. Every item is loaded with
the global generators seeded from ``(seed, epoch, item index)`` and every batch is mixed
(mixup / cutmix) with them seeded from ``(seed, epoch, batch index)``, so a run gives the
same batches whatever the number of workers, and a resumed run, which only asks for the
batches after its checkpoint, gets exactly those the interrupted run would have had.

A dataset with ``num_repeats`` > 1 (VideoMAE's repeated augmentation) gives items holding
several augmented inputs of one target; they become that many batch entries.

Items that a dataset's :class:`~m2pt.data.robust.BadFileTracker` skips inside a worker are
sent back with the batch and counted by the main process's tracker, so the
``max_bad_fraction`` limit applies to the whole run, not to each worker's share.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate, get_worker_info

from m2pt.data.seeding import BATCH_STREAM, ITEM_STREAM, derived_seed, preserved_rngs, seed_rngs, seeded_rngs

#: ``mix(inputs, targets) -> (inputs, targets)``, e.g. ``timm.data.Mixup``.
BatchMix = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
#: ``(epoch, batch index in the epoch, item index in the dataset)``.
ItemKey = tuple[int, int, int]

MAX_DEFAULT_WORKERS = 8


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_workers(processes: int = 1, cores: Optional[int] = None) -> int:
    """Loader workers per training process: the cores left after one per process, at most 8.

    Args:
        processes: Training processes on this machine (``LOCAL_WORLD_SIZE`` under torchrun).
        cores: Cores to share (default: :func:`available_cores`).
    """
    cores = available_cores() if cores is None else cores
    return max(0, min(MAX_DEFAULT_WORKERS, cores // max(1, processes) - 1))


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of every random choice made while loading item ``index`` in ``epoch``."""
    return derived_seed(seed, ITEM_STREAM, epoch, index)


def batch_seed(seed: int, epoch: int, batch_index: int, rank: int = 0) -> int:
    """The seed of the batch-level random choices (mixup / cutmix) of one process's batch."""
    return derived_seed(seed, BATCH_STREAM, epoch, batch_index, rank)


def _init_worker(worker_id: int) -> None:
    """A worker must not keep the run folder's lock alive after the training process dies."""
    from .run_lock import close_inherited_locks

    close_inherited_locks()


def _in_main_process() -> bool:
    """Whether this is the training process (whose generators must be left as they were)."""
    return get_worker_info() is None


class LoadedBatch(NamedTuple):
    """One collated batch and the files found unreadable while loading it."""

    inputs: Any
    targets: Any
    bad_files: dict[int, str]


class KeyedBatches(Dataset):
    """Loads items and batches by key, with the generators seeded from the key.

    Args:
        dataset: Items ``(input, target)``.
        seed: The run's seed.
        batch_mix: Optional batch-level augmentation (mixup / cutmix) applied after collation.
        rank: The training process's rank (each process mixes its own batches differently).
    """

    def __init__(self, dataset: Dataset, seed: int, batch_mix: Optional[BatchMix] = None, rank: int = 0) -> None:
        self.dataset = dataset
        self.seed = seed
        self.batch_mix = batch_mix
        self.rank = rank

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: ItemKey) -> Any:
        epoch, _, index = key
        with seeded_rngs(item_seed(self.seed, epoch, index), restore=_in_main_process()):
            return self.dataset[index]

    def __getitems__(self, keys: Sequence[ItemKey]) -> LoadedBatch:
        tracker = getattr(self.dataset, "tracker", None)
        known_bad = set(tracker.errors) if tracker is not None else set()
        # The generators are saved and restored once per batch (in the training process only).
        with preserved_rngs(_in_main_process()):
            items = []
            for epoch, _, index in keys:
                seed_rngs(item_seed(self.seed, epoch, index))
                items.append(self.dataset[index])
            inputs, targets = default_collate(items)
            repeats = int(getattr(self.dataset, "num_repeats", 1))
            if repeats > 1:  # repeated augmentation: each item holds `repeats` inputs of one target
                inputs, targets = inputs.flatten(0, 1), targets.repeat_interleave(repeats, dim=0)
            if self.batch_mix is not None:
                epoch, batch_index, _ = keys[0]
                seed_rngs(batch_seed(self.seed, epoch, batch_index, self.rank))
                inputs, targets = self.batch_mix(inputs, targets)
        bad = {i: message for i, message in tracker.errors.items() if i not in known_bad} if tracker else {}
        return LoadedBatch(inputs, targets, bad)


class EpochBatchSampler(Sampler[list[ItemKey]]):
    """Yields the keys of the batches set by :meth:`set_epoch` (main process only)."""

    def __init__(self) -> None:
        self.keys: list[list[ItemKey]] = []

    def set_epoch(self, epoch: int, batches: Sequence[Sequence[int]], first: int = 0) -> None:
        """Batches ``first..`` of ``batches`` (item indices) in epoch ``epoch``."""
        self.keys = [[(epoch, b, int(i)) for i in batches[b]] for b in range(first, len(batches))]

    def __iter__(self) -> Iterator[list[ItemKey]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def _unchanged(batch: LoadedBatch) -> LoadedBatch:
    return batch


class TrainLoader:
    """Batches of one run, loaded by ``workers`` persistent processes (0: the main process).

    Args:
        dataset: The training set.
        seed: The run's seed (items and batches are seeded from it).
        workers: Loader processes; 0 loads in the main process.
        pin_memory: Pin batches for faster, asynchronous copies to the GPU.
        batch_mix: Optional mixup / cutmix, applied per batch inside the workers.
        prefetch: Batches each worker loads ahead.
        rank: The training process's rank.
    """

    def __init__(self, dataset: Dataset, seed: int, workers: int, pin_memory: bool = False,
                 batch_mix: Optional[BatchMix] = None, prefetch: int = 2, rank: int = 0) -> None:
        if workers < 0:
            raise ValueError(f"workers must be 0 (load in the main process) or more, got {workers}")
        self.tracker = getattr(dataset, "tracker", None)
        self.sampler = EpochBatchSampler()
        # An explicit generator: the DataLoader draws its worker base seed from it instead of
        # from the global torch generator, which belongs to the training loop.
        self.loader = DataLoader(KeyedBatches(dataset, seed, batch_mix, rank), batch_sampler=self.sampler,
                                 num_workers=workers, collate_fn=_unchanged, pin_memory=pin_memory,
                                 persistent_workers=workers > 0, prefetch_factor=prefetch if workers else None,
                                 generator=torch.Generator().manual_seed(seed), worker_init_fn=_init_worker)

    def epoch(self, epoch: int, batches: Sequence[Sequence[int]], first: int = 0) -> Iterator[tuple[Any, Any]]:
        """Yield ``(inputs, targets)`` of ``batches[first:]`` of ``epoch``, in order."""
        self.sampler.set_epoch(epoch, batches, first)
        for batch in self.loader:
            if self.tracker is not None and batch.bad_files:
                self.tracker.merge(batch.bad_files)
            yield batch.inputs, batch.targets

    def close(self) -> None:
        """Stop the worker processes now (they also stop when the loader is garbage-collected)."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader._iterator = None

    def __enter__(self) -> "TrainLoader":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
