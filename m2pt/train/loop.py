"""The training loop shared by fine-tuning and MAE pretraining (nanoGPT-style: one function).

Data order comes from a ``DistributedSampler`` (also with one process), so the order of epoch
``e`` depends only on ``seed`` and ``e``; batches are loaded by :class:`~m2pt.train.loader.TrainLoader`
(worker processes, augmentation seeded per item and batch). A resumed run loads only the batches
after its checkpoint and continues with the RNG states saved at that point, which makes resume exact.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler
from tqdm.auto import tqdm

from m2pt.io import NoSpaceError
from m2pt.pathway import param_groups, pathway_scales

from .config import TrainConfig
from .distributed import DistInfo, all_reduce_any, barrier
from .loader import BatchMix, TrainLoader, default_workers
from .precision import MixedPrecision
from .run_dir import CHECKPOINT, FINAL, MetricsWriter
from .schedule import lr_at, set_lr
from .signals import NoStopRequest, StopRequest
from .state import load_training_state, save_training_state, seed_everything, set_rng_state

LossFn = Callable[[nn.Module, Any, Any], Tensor]
EvalFn = Callable[[nn.Module], dict[str, float]]


@dataclass
class FitResult:
    """How :func:`fit` ended."""

    finished: bool
    step: int
    epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: Optional[str] = None


def base_learning_rate(config: TrainConfig, world_size: int) -> float:
    """``lr`` if given, else ``blr * global_batch / 256`` (the MAE convention)."""
    if config.lr is not None:
        return float(config.lr)
    return config.blr * config.batch_size * config.accum_steps * world_size / 256


def build_optimizer(model: nn.Module, config: TrainConfig, base_lr: float) -> torch.optim.Optimizer:
    """AdamW (or LARS) over ``m2pt.param_groups``: no decay on λ/bias/norm, layer-wise lr decay.

    LARS (MAE's linear probe) adapts the step of weight matrices by the trust ratio and gives
    biases, norms and λ plain momentum SGD, as MAE's ``util/lars.py`` does.
    """
    groups = param_groups(model, weight_decay=config.weight_decay, layer_decay=config.layer_decay,
                          scale_lr_mult=config.pathway.scale_lr_mult)
    if not groups:
        raise ValueError("the model has no trainable parameter; check the freezing options (linear_probe, "
                         "pathway train_* flags)")
    for group in groups:
        group["lr"] = base_lr * group["lr_scale"]
    if config.optimizer == "lars":
        from timm.optim import Lars

        for group in groups:
            group["always_adapt"] = group["name"].endswith("_decay") and not group["name"].endswith("no_decay")
        return Lars(groups, lr=base_lr, momentum=0.9, weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, lr=base_lr, betas=(0.9, 0.999))


def epoch_batches(dataset: Dataset, config: TrainConfig, info: DistInfo, epoch: int) -> list[list[int]]:
    """This rank's micro-batches (index lists) of one epoch, a whole number of optimiser steps."""
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=config.seed, drop_last=True)
    sampler.set_epoch(epoch)
    indices = list(sampler)
    batches = [indices[i:i + config.batch_size] for i in range(0, len(indices) - config.batch_size + 1,
                                                               config.batch_size)]
    if config.max_train_batches is not None:
        batches = batches[:config.max_train_batches]
    return batches[:len(batches) - len(batches) % config.accum_steps]


def resolve_workers(config: TrainConfig) -> int:
    """``config.workers``, or one per core left after the training processes of this machine."""
    if config.workers is not None:
        return config.workers
    return default_workers(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    return batch


def fit(
    config: TrainConfig,
    model: nn.Module,
    train_set: Dataset,
    compute_loss: LossFn,
    info: DistInfo,
    folder: Optional[Path],
    logger: Any,
    evaluate: Optional[EvalFn] = None,
    resume: bool = False,
    quiet: bool = False,
    log_every: int = 10,
    batch_mix: Optional[BatchMix] = None,
    handle_signals: bool = False,
) -> FitResult:
    """Train ``model`` (pathways already attached) for ``config.epochs`` epochs.

    The loss stays on the device and is read every ``log_every`` steps (and at the end of each
    epoch), so steps are not serialised by host-device synchronisations; a non-finite loss is
    reported at the first read after it appears, before any checkpoint is written.

    Args:
        config: Resolved options (:func:`~m2pt.train.config.resolve_for_world`).
        model: The plain model, on ``info.device``; wrapped in DDP here when distributed.
        train_set: Training data; items are ``(input, target)``.
        compute_loss: ``compute_loss(wrapped_model, inputs, targets) -> loss`` (mean over the batch).
        info: Rank / world / device.
        folder: Run folder (checkpoint, metrics); None writes nothing (rank > 0 writes nothing).
        logger: A ``logging.Logger``.
        evaluate: ``evaluate(model) -> metrics`` on the unwrapped model, run by rank 0 after epochs.
        resume: Continue from ``folder/checkpoint.pt``.
        quiet: No progress bars.
        log_every: Steps between metric records (and loss reads).
        batch_mix: Batch-level augmentation (mixup / cutmix), applied in the loader.
        handle_signals: Install SIGINT/SIGTERM handlers while training: a signal finishes the
            step, saves a checkpoint and returns. Off by default (a library call leaves the
            process's handlers alone); the CLI and the experiment runner turn it on.

    Returns:
        A :class:`FitResult`; ``finished`` is False when a signal (or ``interrupt_at_step``)
        stopped the run after saving a checkpoint.
    """
    device = info.device
    base_lr = base_learning_rate(config, info.world_size)
    optimizer = build_optimizer(model, config, base_lr)
    precision = MixedPrecision.for_run(device, config.amp, config.amp_dtype)
    trainable = [p for p in model.parameters() if p.requires_grad]
    writes = folder is not None and info.is_main
    checkpoint_path = folder / CHECKPOINT if folder is not None else None

    start_epoch, skip_batches, step = 0, 0, 0
    resumed_loss: tuple[float, int] = (0.0, 0)  # loss sum and steps of a partly done epoch
    if resume and checkpoint_path is not None and checkpoint_path.is_file():
        state = load_training_state(checkpoint_path, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        precision.load_state_dict(state["extra"].get("grad_scaler", {}))
        start_epoch, skip_batches, step = state["epoch"], state["batch_in_epoch"], state["step"]
        stored = state.get("extra", {}).get("epoch_loss")
        resumed_loss = (float(stored[0]), int(stored[1])) if skip_batches and stored else (0.0, 0)
        if info.is_main:
            set_rng_state(state["rng"])
        else:
            seed_everything(config.seed + info.rank + 1000 * step)
        logger.info(f"resumed from {checkpoint_path} at epoch {start_epoch}, batch {skip_batches}, step {step}")
        magnitudes = [abs(scale) for scale in pathway_scales(model).values()]
        if magnitudes:
            logger.info(f"|λ| at resume: mean {sum(magnitudes) / len(magnitudes):.3g}, min {min(magnitudes):.3g}, "
                        f"max {max(magnitudes):.3g}")
        _record_changed_options(state.get("extra", {}).get("config", {}), config, folder, logger)
    metrics = MetricsWriter(folder, resume_step=step if resume else None) if writes else None

    wrapped: nn.Module = model
    if info.enabled:
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    forward: nn.Module = torch.compile(wrapped) if config.compile else wrapped

    steps_per_epoch = len(epoch_batches(train_set, config, info, 0)) // config.accum_steps
    if steps_per_epoch == 0:
        capped = (f" within max_train_batches={config.max_train_batches}"
                  if config.max_train_batches is not None else "")
        raise ValueError(
            f"the training set ({len(train_set)} items) gives no full step of batch_size={config.batch_size} x "
            f"accum_steps={config.accum_steps} x {info.world_size} process(es){capped}; lower the batch size"
            + (" or raise max_train_batches to at least accum_steps" if capped else ""))
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    history: list[dict[str, Any]] = []
    # float64 sums of float32 losses: the same numbers as summing Python floats, without a read per step.
    loss_dtype = torch.float32 if device.type == "mps" else torch.float64

    def save(epoch: int, batch_in_epoch: int, epoch_loss_so_far: Optional[tuple[float, int]] = None) -> None:
        if writes:
            try:
                save_training_state(checkpoint_path, model, optimizer, epoch, batch_in_epoch, step,
                                    extra={"config": config.to_dict(), "grad_scaler": precision.state_dict(),
                                           "epoch_loss": epoch_loss_so_far})
            except NoSpaceError as exc:
                logger.error(f"checkpoint at step {step} not saved: {exc}")
                raise
        barrier(info)

    def read_loss(loss: Tensor, since_step: int) -> float:
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"loss is {value} at step {step} (last read finite at step {since_step}); "
                                     "lower the learning rate")
        return value

    loader = TrainLoader(train_set, config.seed, resolve_workers(config), pin_memory=device.type == "cuda",
                         batch_mix=batch_mix, rank=info.rank)
    with (StopRequest() if handle_signals else NoStopRequest()) as stop, loader:
        for epoch in range(start_epoch, config.epochs):
            batches = epoch_batches(train_set, config, info, epoch)
            first = skip_batches if epoch == start_epoch else 0
            wrapped.train()
            resumed = epoch == start_epoch and first > 0
            epoch_loss = torch.tensor(resumed_loss[0] if resumed else 0.0, dtype=loss_dtype, device=device)
            epoch_steps, last_read = (resumed_loss[1] if resumed else 0), step
            started = time.perf_counter()
            bar = tqdm(total=len(batches) // config.accum_steps, initial=first // config.accum_steps,
                       desc=f"epoch {epoch + 1}/{config.epochs}", disable=quiet or not info.is_main,
                       leave=False, dynamic_ncols=True)
            loaded = loader.epoch(epoch, batches, first)
            for start in range(first, len(batches), config.accum_steps):
                lr = lr_at(step, total_steps, warmup_steps, base_lr, config.min_lr)
                set_lr(optimizer, lr)
                step_loss = torch.zeros((), dtype=loss_dtype, device=device)
                for micro in range(config.accum_steps):
                    inputs, targets = _to_device(next(loaded), device)
                    sync = micro == config.accum_steps - 1 or not info.enabled
                    with (contextlib.nullcontext() if sync else wrapped.no_sync()), precision.autocast():
                        loss = compute_loss(forward, inputs, targets) / config.accum_steps
                    precision.backward(loss)
                    step_loss += loss.detach()
                precision.step(optimizer, trainable, config.clip_grad)
                step += 1
                epoch_loss += step_loss
                epoch_steps += 1
                bar.update(1)
                logged = step % log_every == 0 or step == 1
                if logged:
                    value = read_loss(step_loss, last_read)
                    last_read = step
                    bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}")
                    if metrics is not None:
                        metrics.write({"step": step, "epoch": epoch + (start + config.accum_steps) / len(batches),
                                       "loss": value, "lr": lr, "scales": pathway_scales(model)})
                signalled = stop.requested
                if info.enabled:  # ranks agree on a signal when they synchronise anyway
                    signalled = all_reduce_any(signalled, info) if logged else False
                if signalled or (config.interrupt_at_step is not None and step == config.interrupt_at_step):
                    bar.close()
                    save(epoch, start + config.accum_steps, (read_loss(epoch_loss, last_read), epoch_steps))
                    reason = stop.signal_name or "interrupt_at_step"
                    logger.info(f"stopped by {reason} at step {step}; checkpoint saved to {checkpoint_path}")
                    return FitResult(False, step, epoch, history, reason)
                if (config.save_every_steps and step % config.save_every_steps == 0
                        and start + config.accum_steps < len(batches)):
                    save(epoch, start + config.accum_steps, (read_loss(epoch_loss, last_read), epoch_steps))
            bar.close()
            record: dict[str, Any] = {
                "step": step, "epoch": epoch + 1,
                "train_loss": read_loss(epoch_loss, last_read) / max(1, epoch_steps),
                "epoch_seconds": time.perf_counter() - started, "scales": pathway_scales(model)}
            last = epoch + 1 == config.epochs
            if evaluate is not None and info.is_main and (last or (config.eval_every and
                                                                  (epoch + 1) % config.eval_every == 0)):
                record.update(evaluate(model))
            history.append(record)
            if metrics is not None:
                metrics.write(record)
            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items() if k != "scales"}
            logger.info(f"epoch {epoch + 1}/{config.epochs} {shown}")
            save(epoch + 1, 0)
    return FitResult(True, step, config.epochs, history)


def _record_changed_options(stored: dict[str, Any], config: TrainConfig, folder: Optional[Path], logger: Any) -> None:
    """Log the options a resume changed (e.g. more epochs); a finished run that goes on is unfinished again."""
    changed = {k: (stored[k], v) for k, v in config.to_dict().items()
               if k in stored and stored[k] != v and k not in ("output", "interrupt_at_step")}
    if changed:
        logger.info("resumed with changed options: "
                    + ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items())))
    if folder is not None and "epochs" in changed and (folder / FINAL).is_file():
        (folder / FINAL).unlink()
        logger.info(f"{FINAL} removed: the run continues to epoch {config.epochs}")
