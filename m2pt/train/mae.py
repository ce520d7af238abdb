"""MAE-style pretraining of an auxiliary model on any modality; the output loads with ``load_auxiliary``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from torch.utils.data import Dataset

from .config import TrainConfig, resolve_for_world
from .data import build_model, build_split, check_separate_test_data
from .distributed import DistInfo, distributed_session
from m2pt.checkpoints import save_model
from .loop import fit
from .precision import autocast
from .mae_model import MaskedAutoencoder
from .plots import write_plots
from .run_dir import (MetricsWriter, close_logger, make_logger, prepare_run_folder, skipped_files, write_config,
                      write_final)
from .run_lock import lock_run_folder
from .state import seed_everything

ENCODER_FILE = "encoder.safetensors"


@torch.no_grad()
def reconstruction_loss(mae: MaskedAutoencoder, dataset: Dataset, device: torch.device, batch_size: int = 64,
                        seed: int = 0, amp: bool = True, amp_dtype: str = "bf16") -> dict[str, float]:
    """Mean masked-token loss on ``dataset`` with a fixed masking seed (comparable across epochs)."""
    was_training = mae.training
    mae.eval()
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for x, _ in torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False):
        with autocast(device, amp, amp_dtype):
            total += mae(x.to(device), generator=generator).item() * x.shape[0]
        count += x.shape[0]
    mae.train(was_training)
    return {"test_loss": total / max(1, count)}


def pretrain(config: TrainConfig, resume: bool = False, overwrite: bool = False, quiet: bool = False,
             info: Optional[DistInfo] = None, handle_signals: bool = False) -> dict[str, Any]:
    """MAE-pretrain a ``config.modality`` model and save its encoder to ``<output>/encoder.safetensors``.

    Returns:
        Final metrics (``{"finished": False, ...}`` when a signal stopped the run).
    """
    with distributed_session(config.device, info) as session, lock_run_folder(config.output, session.is_main):
        return _pretrain(resolve_for_world(config, session.world_size), resume, overwrite, quiet, session,
                         handle_signals)


def _pretrain(config: TrainConfig, resume: bool, overwrite: bool, quiet: bool, info: DistInfo,
              handle_signals: bool) -> dict[str, Any]:
    folder = prepare_run_folder(config.output, resume, overwrite) if info.is_main else Path(config.output)
    logger = make_logger(folder if info.is_main else None, quiet or not info.is_main)
    try:
        check_separate_test_data(config)
        train_set, test_set = build_split(config, "train"), build_split(config, "test")
        torch.manual_seed(config.seed)
        encoder = build_model(config, num_classes=0)
        mae = MaskedAutoencoder(encoder, config.modality, config.mask_ratio, config.decoder_dim,
                                config.decoder_depth, norm_pix_loss=config.norm_pix_loss).to(info.device)
        seed_everything(config.seed + info.rank)
        if info.is_main:
            write_config(folder, {**config.to_dict(), "world_size": info.world_size,
                                  "model_args": encoder.m2pt_model_args})
            logger.info(f"MAE pretraining {config.modality}/{config.preset} on {len(train_set)} items, "
                        f"mask ratio {config.mask_ratio}, device {info.device}, {info.world_size} process(es)")

        def loss(model: nn.Module, x: torch.Tensor, _: Any) -> torch.Tensor:
            return model(x)

        def evaluate(model: nn.Module) -> dict[str, float]:
            return reconstruction_loss(model, test_set, info.device, seed=config.seed, amp=config.amp,
                                       amp_dtype=config.amp_dtype)

        result = fit(config, mae, train_set, loss, info, folder if info.is_main else None, logger, evaluate,
                     resume=resume, quiet=quiet, handle_signals=handle_signals)
        if not result.finished:
            return {"finished": False, "step": result.step, "stop_reason": result.stop_reason}
        if not info.is_main:
            return {"finished": True, "step": result.step}
        records = MetricsWriter(folder).read()
        final = {"finished": True, **{k: v for k, v in records[-1].items() if k != "scales"},
                 "encoder": str(folder / ENCODER_FILE), **skipped_files({"train": train_set, "test": test_set})}
        pretrained = mae.pretrained_encoder()
        save_model(pretrained.cpu() if info.device.type != "cpu" else pretrained, folder / ENCODER_FILE,
                   extra={"pretraining": {"method": "mae", "mask_ratio": config.mask_ratio,
                                                "epochs": config.epochs}})
        write_plots(folder, records)
        write_final(folder, final)
        logger.info(f"saved the pretrained encoder to {folder / ENCODER_FILE}")
        return final
    finally:
        close_logger(logger)
