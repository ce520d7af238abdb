"""``m2pt demo``: the whole method on built-in data in a few minutes on a CPU.

1. MAE-pretrain a tiny audio transformer on generated spoken digits (the auxiliary model).
2. Fine-tune a tiny image ViT on a Fashion-MNIST subset twice, with the same data order and
   budget: plain, and with pathways from the audio model.
3. Merge the pathway model, check that it predicts as the unmerged one, and time inference.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig
from m2pt.checkpoints import load_model
from .finetuning import finetune
from .mae import ENCODER_FILE, pretrain


def _median_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int = 7) -> float:
    model.eval()
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def run_demo(output: str = "runs/demo", quick: bool = False, seed: int = 0, quiet: bool = False,
             overwrite: bool = True, handle_signals: bool = False) -> dict[str, Any]:
    """Run the demo into ``output`` and return its numbers (also printed as a table).

    ``handle_signals``: SIGINT/SIGTERM stop a run after saving (the ``m2pt demo`` command turns it on).
    """
    root = Path(output)
    started = time.perf_counter()
    aux_epochs, epochs, train_size = (2, 1, 2000) if quick else (6, 3, 12000)
    aux_config = TrainConfig(
        task="pretrain", modality="audio", preset="tiny", output=str(root / "aux_audio_mae"),
        data_options={"train_size": 800, "test_size": 200}, epochs=aux_epochs, batch_size=32, lr=1e-3,
        warmup_epochs=1, mask_ratio=0.8, decoder_dim=128, decoder_depth=2, min_lr=1e-5, seed=seed,
        cache_data=True)
    print(f"[1/3] MAE-pretraining the auxiliary audio model ({aux_epochs} epochs on generated spoken digits)")
    aux_result = pretrain(aux_config, overwrite=overwrite, quiet=quiet, handle_signals=handle_signals)
    if not aux_result["finished"]:
        return _stopped(aux_result)
    aux_path = str(root / "aux_audio_mae" / ENCODER_FILE)

    base = TrainConfig(
        task="finetune", modality="image", preset="tiny", data_options={"train_size": train_size, "test_size": 2000},
        epochs=epochs, batch_size=128, lr=1e-3, warmup_epochs=0.5, weight_decay=0.05, label_smoothing=0.1,
        min_lr=1e-5, seed=seed)
    print(f"[2/3] fine-tuning the image ViT without pathways ({epochs} epochs on {train_size} Fashion-MNIST images)")
    plain = finetune(base.replace(output=str(root / "image_plain")), overwrite=overwrite, quiet=quiet,
                     handle_signals=handle_signals)
    if not plain["finished"]:
        return _stopped(plain)
    print("[3/3] fine-tuning the same ViT with pathways from the audio model (same data order and budget)")
    m2pt_run = finetune(base.replace(output=str(root / "image_m2pt"), aux=[aux_path]), overwrite=overwrite,
                        quiet=quiet, handle_signals=handle_signals)

    if not m2pt_run["finished"]:
        return _stopped(m2pt_run)
    plain_model = load_model(root / "image_plain" / "model.safetensors")
    merged_model = load_model(root / "image_m2pt" / "model.safetensors")
    x = torch.randn(256, *merged_model.pretrained_cfg["input_size"])
    result = {
        "aux_reconstruction_loss": aux_result["test_loss"],
        "plain_top1": plain["top1"], "m2pt_top1": m2pt_run["top1"],
        "scale_abs_mean": m2pt_run["scale_abs_mean"], "scale_abs_min": m2pt_run["scale_abs_min"],
        "scale_abs_max": m2pt_run["scale_abs_max"], "pathway_layers": m2pt_run["pathway_layers"],
        "merge_max_abs_diff": m2pt_run["merge_max_abs_diff"],
        "merge_same_predictions": m2pt_run["merge_same_predictions"],
        "plain_ms": _median_ms(plain_model, x), "merged_ms": _median_ms(merged_model, x),
        "total_seconds": time.perf_counter() - started,
    }
    print(format_table(result))
    return result


def _stopped(result: dict[str, Any]) -> dict[str, Any]:
    print(f"demo stopped ({result.get('stop_reason')}); run `m2pt demo` again to start over")
    return result


def format_table(r: dict[str, Any]) -> str:
    """The demo's summary table."""
    rows = [
        ("auxiliary (audio MAE) test reconstruction loss", f"{r['aux_reconstruction_loss']:.4f}"),
        ("image ViT, plain: test top-1", f"{r['plain_top1']:.2f} %"),
        ("image ViT + audio pathways (merged): test top-1", f"{r['m2pt_top1']:.2f} %"),
        (f"|λ| over {r['pathway_layers']} layers: mean / min / max",
         f"{r['scale_abs_mean']:.3g} / {r['scale_abs_min']:.3g} / {r['scale_abs_max']:.3g}"),
        ("merged vs pathway model: max |Δ logit|", f"{r['merge_max_abs_diff']:.2e}"),
        ("merged vs pathway model: same predictions", f"{100 * r['merge_same_predictions']:.1f} %"),
        ("inference, 256 images: plain / merged", f"{r['plain_ms']:.1f} ms / {r['merged_ms']:.1f} ms"),
        ("demo wall time", f"{r['total_seconds']:.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    line = "-" * (width + 20)
    return "\n".join([line] + [f"{name:<{width}}  {value}" for name, value in rows] + [line])
