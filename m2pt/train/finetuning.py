"""Fine-tuning a modality model, with or without pathways, ending in a merged plain model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from m2pt.checkpoints import LoadReport, load_target_weights, save_model
from m2pt.data.augment.images import batch_mixup
from m2pt.data.class_map import match_classes
from m2pt.pathway import add_pathways, has_pathways, merge_pathways, pathway_summary, save_pathways

from .config import TrainConfig, resolve_for_world
from .data import build_model, build_split, check_separate_test_data
from .distributed import DistInfo, distributed_session
from .linear_probe import fold_probe_head, prepare_linear_probe
from .loader import BatchMix, TrainLoader
from .loop import fit, resolve_workers
from .precision import autocast
from .metrics import mean_average_precision, topk_correct
from .plots import write_plots
from .run_dir import (MetricsWriter, close_logger, make_logger, prepare_run_folder, skipped_files, write_config,
                      write_final)
from .run_lock import lock_run_folder
from .state import seed_everything


def load_auxiliaries(paths: list[str]) -> list[nn.Module]:
    """Read each auxiliary checkpoint (any layout ``m2pt.checkpoints.load_auxiliary`` knows)."""
    from m2pt.checkpoints import load_auxiliary

    missing = [p for p in paths if not Path(p).expanduser().exists()]
    if missing:
        raise FileNotFoundError(f"auxiliary checkpoint(s) not found: {', '.join(missing)}")
    return [load_auxiliary(str(Path(p).expanduser())) for p in paths]


def load_initial_weights(model: nn.Module, path: str) -> LoadReport:
    """Start the target from ``path`` (any layout ``load_target_weights`` reads).

    The classifier (``head``, ``fc_norm``) may be missing, as in a pretraining checkpoint;
    any other tensor that cannot be loaded is an error, never a silently random layer.
    """
    report = load_target_weights(model, path)
    not_loaded = [k for k in report.missing + [change.key for change in report.mismatched]
                  if not k.startswith(("head", "fc_norm"))]
    if not_loaded and all(k.startswith("norm.") for k in not_loaded) and not report.mismatched:
        raise ValueError(f"{path} has no final norm ({', '.join(not_loaded)}) for the class-token pooling of the "
                         "target (global_pool='token'): it is an average-pooling checkpoint, such as an m2pt MAE "
                         "encoder saved before m2pt stored the trained norm. Pretrain it again with this m2pt, or "
                         "pool by average: --model-override global_pool=avg")
    if not_loaded:
        raise ValueError(f"{path} does not fit the target model: {len(not_loaded)} tensors missing or of another "
                         f"shape, e.g. {not_loaded[:5]}\n{report}")
    return report


def make_loss(config: TrainConfig, num_classes: int, multi_label: bool) -> Callable[[nn.Module, Tensor, Tensor], Tensor]:
    """Cross-entropy with label smoothing (soft-target cross-entropy for mixed batches), or BCE for multi-label data."""
    if multi_label:
        return lambda model, x, y: F.binary_cross_entropy_with_logits(model(x), y.float())
    from timm.loss import SoftTargetCrossEntropy

    soft_cross_entropy = SoftTargetCrossEntropy()

    def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        logits = model(x)
        if y.is_floating_point():  # soft targets from mixup / cutmix (smoothing already folded in)
            return soft_cross_entropy(logits.float(), y)
        return F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
    return loss


def make_batch_mix(config: TrainConfig, num_classes: int, multi_label: bool) -> Optional[BatchMix]:
    """timm's ``Mixup`` for image and video batches when ``mixup`` or ``cutmix`` is set (run in the loader)."""
    if multi_label or config.modality not in ("image", "video"):
        return None
    return batch_mixup(config.mixup, config.cutmix, num_classes, config.label_smoothing,
                       config.mixup_prob, config.mixup_switch_prob)


def view_logits(model: nn.Module, inputs: Tensor, views: int, reduction: str = "softmax") -> Tensor:
    """Scores of inputs holding ``views`` views per item (``[B, views, ...]``), averaged over the views.

    Args:
        model: Maps ``[N, ...]`` inputs to logits ``[N, K]``.
        inputs: ``[B, ...]`` when ``views`` is 1, else ``[B, views, ...]``.
        views: Views per item.
        reduction: ``"softmax"`` averages the views' class probabilities and returns their log
            (VideoMAE's multi-view test); ``"logits"`` averages the logits (Point-MAE's voting).

    Returns:
        ``[B, K]`` logits (or log-probabilities), usable by ``cross_entropy`` and top-k.
    """
    if views == 1:
        return model(inputs).float()
    logits = model(inputs.flatten(0, 1)).float().unflatten(0, (inputs.shape[0], views))
    if reduction == "softmax":
        return logits.softmax(-1).mean(1).log()
    if reduction == "logits":
        return logits.mean(1)
    raise ValueError(f"view reduction must be 'softmax' or 'logits', got {reduction!r}")


def evaluation_loader(dataset: Dataset, workers: int, device: torch.device, seed: int = 0) -> TrainLoader:
    """Loads ``dataset`` in order, in ``workers`` processes, items seeded as in training (epoch 0)."""
    return TrainLoader(dataset, seed, workers, pin_memory=device.type == "cuda")


@torch.no_grad()
def evaluate_model(model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 256,
                   multi_label: bool = False, amp: bool = True, amp_dtype: str = "bf16",
                   loader: Optional[TrainLoader] = None) -> dict[str, float]:
    """Test loss and top-1/top-5 accuracy (%), or mAP (%) for multi-label data.

    A dataset with ``num_views > 1`` (video clips x crops, point voting) gives several views per
    item; their scores are averaged as its ``view_reduction`` says (see :func:`view_logits`).
    ``loader`` (see :func:`evaluation_loader`) loads in worker processes; default: the main process.
    """
    was_training = model.training
    model.eval()
    loader = loader or evaluation_loader(dataset, 0, device)
    views = int(getattr(dataset, "num_views", 1))
    reduction = "logits" if multi_label else getattr(dataset, "view_reduction", "softmax")
    order = list(range(len(dataset)))  # type: ignore[arg-type]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    total, loss_sum, correct = 0, 0.0, {1: 0, 5: 0}
    scores, labels = [], []
    for x, y in loader.epoch(0, batches):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, amp, amp_dtype):
            logits = view_logits(model, x, views, reduction)
        if multi_label:
            loss_sum += F.binary_cross_entropy_with_logits(logits, y.float(), reduction="sum").item() / y.shape[1]
            scores.append(logits.cpu())
            labels.append(y.cpu())
        else:
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            for k, n in topk_correct(logits, y).items():
                correct[k] += n
        total += y.shape[0]
    model.train(was_training)
    if multi_label:
        return {"test_loss": loss_sum / total, "mAP": 100 * mean_average_precision(torch.cat(scores), torch.cat(labels))}
    return {"test_loss": loss_sum / total, "top1": 100 * correct[1] / total, "top5": 100 * correct[5] / total}


def predictions_match(model: nn.Module, merged: nn.Module, dataset: Dataset, device: torch.device,
                      count: int = 64) -> dict[str, float]:
    """Compare the pathway model and its merged form on ``count`` test inputs (eval mode, float32)."""
    x = torch.stack([dataset[i][0] for i in range(min(count, len(dataset)))]).to(device)
    if int(getattr(dataset, "num_views", 1)) > 1:
        x = x.flatten(0, 1)
    model.eval()
    merged.eval()
    with torch.no_grad():
        a, b = model(x).float(), merged(x).float()
    return {"merge_max_abs_diff": (a - b).abs().max().item(),
            "merge_same_predictions": float((a.argmax(1) == b.argmax(1)).float().mean().item())}


def finetune(config: TrainConfig, resume: bool = False, overwrite: bool = False, quiet: bool = False,
             info: Optional[DistInfo] = None, handle_signals: bool = False) -> dict[str, Any]:
    """Fine-tune per ``config``; write the run folder; return the final metrics.

    Everything that can fail on bad input (output folder, data, checkpoints, pathway shapes)
    is checked before the first step. The batch and lr are resolved for the world size
    (:func:`~m2pt.train.config.resolve_for_world`) and written to ``config.json`` as run.
    ``handle_signals`` lets SIGINT/SIGTERM stop the run after saving (see :func:`~m2pt.train.loop.fit`).

    Returns:
        Final metrics; ``{"finished": False, ...}`` when a signal stopped the run (resume it
        with ``resume=True``).
    """
    with distributed_session(config.device, info) as session, lock_run_folder(config.output, session.is_main):
        return _finetune(resolve_for_world(config, session.world_size), resume, overwrite, quiet, session,
                         handle_signals)


def _finetune(config: TrainConfig, resume: bool, overwrite: bool, quiet: bool, info: DistInfo,
              handle_signals: bool) -> dict[str, Any]:
    folder = prepare_run_folder(config.output, resume, overwrite) if info.is_main else Path(config.output)
    logger = make_logger(folder if info.is_main else None, quiet or not info.is_main)
    try:
        check_separate_test_data(config)
        train_set, test_set = build_split(config, "train"), build_split(config, "test")
        test_set = match_classes(test_set, train_set.classes, f"the test set ({config.test_data or config.data})")
        num_classes = train_set.num_classes
        multi_label = bool(getattr(train_set, "multi_label", False))
        torch.manual_seed(config.seed)
        model = build_model(config, num_classes, multi_label)
        if config.init:
            load_initial_weights(model, config.init)
        if config.aux:
            add_pathways(model, load_auxiliaries(config.aux), config.pathway)
        if config.linear_probe:
            prepare_linear_probe(model)
        model.to(info.device)
        seed_everything(config.seed + info.rank)
        if info.is_main:
            write_config(folder, {**config.to_dict(), "num_classes": num_classes, "multi_label": multi_label,
                                  "world_size": info.world_size, "model_args": model.m2pt_model_args,
                                  **model_card(train_set, config)})
            logger.info(f"fine-tuning {config.modality}/{config.preset} on {len(train_set)} items, "
                        f"{num_classes} classes, {len(config.aux)} auxiliary model(s), device {info.device}, "
                        f"{info.world_size} process(es)")
            logger.info(f"global batch {config.global_batch_size} = {info.world_size} process(es) x "
                        f"{config.batch_size} x {config.accum_steps} accumulation step(s); peak lr {config.lr:.3g}")
            if has_pathways(model):
                logger.info(str(pathway_summary(model)).split("\n")[2])
                if (config.amp and info.device.type == "cuda" and config.amp_dtype == "bf16"
                        and not config.pathway.split_under_autocast):
                    logger.warning("bf16 autocast rounds W + λW' to bf16, which keeps about half of λW' at "
                                   "|λ| ~ 1e-3 (fp16: 0.96); --amp-dtype fp16 (the base methods' choice) or "
                                   "--split-under-autocast keeps it")

        evaluation = evaluation_loader(test_set, resolve_workers(config), info.device, config.seed)

        def evaluate(m: nn.Module) -> dict[str, float]:
            return evaluate_model(m, test_set, info.device, multi_label=multi_label, amp=config.amp,
                                  amp_dtype=config.amp_dtype, loader=evaluation)

        with evaluation:
            result = fit(config, model, train_set, make_loss(config, num_classes, multi_label), info,
                         folder if info.is_main else None, logger, evaluate, resume=resume, quiet=quiet,
                         batch_mix=make_batch_mix(config, num_classes, multi_label),
                         handle_signals=handle_signals)
        if not result.finished:
            return {"finished": False, "step": result.step, "stop_reason": result.stop_reason}
        if not info.is_main:
            return {"finished": True, "step": result.step}
        return _finish(config, folder, model, test_set, info, logger, model_card(train_set, config),
                       skipped_files({"train": train_set, "test": test_set}))
    finally:
        close_logger(logger)


def model_card(train_set: Dataset, config: TrainConfig) -> dict[str, Any]:
    """What the saved model must know to be used the way it was trained: its classes and input."""
    from m2pt.data.input_spec import input_spec

    return {"classes": list(train_set.classes), "input_spec": input_spec(train_set, config.modality)}


def _finish(config: TrainConfig, folder: Path, model: nn.Module, test_set: Dataset, info: DistInfo,
            logger: Any, card: Optional[dict[str, Any]] = None,
            skipped: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Merge, verify, save the plain model, plot, and write ``final_metrics.json`` (last)."""
    records = MetricsWriter(folder).read()
    final: dict[str, Any] = {"finished": True, **{k: v for k, v in records[-1].items() if k != "scales"},
                             **(skipped or {})}
    for key, paths in (skipped or {}).items():
        if key.startswith("skipped_paths_"):
            logger.warning(f"{len(paths)} unreadable {key[len('skipped_paths_'):]} file(s) were skipped: {paths[:20]}")
    if config.linear_probe:
        fold_probe_head(model)
    plain = model
    if has_pathways(model):
        save_pathways(model, folder / "pathways.safetensors")
        summary = pathway_summary(model)
        final.update({f"scale_{k}": v for k, v in summary.scale_stats().items()})
        final["pathway_layers"] = len(summary.layers)
        plain = merge_pathways(model)
        final.update(predictions_match(model, plain, test_set, info.device))
    started = time.perf_counter()
    save_model(plain.cpu() if info.device.type != "cpu" else plain, folder / "model.safetensors",
               extra={"metrics": {k: final[k] for k in ("top1", "top5", "mAP") if k in final}}, **(card or {}))
    logger.info(f"saved the plain model to {folder / 'model.safetensors'} ({time.perf_counter() - started:.1f} s)")
    write_plots(folder, records)
    write_final(folder, final)
    logger.info(f"final: { {k: (round(v, 4) if isinstance(v, float) else v) for k, v in final.items()} }")
    return final
