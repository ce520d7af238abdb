"""Small PNG plots of a run: loss and accuracy curves, λ per layer over training."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_plots(folder: Path, records: list[dict[str, Any]]) -> list[Path]:
    """Write ``plots/loss.png``, ``plots/accuracy.png`` (if evaluated) and ``plots/scales.png`` (if λ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = folder / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    steps = [r for r in records if "loss" in r]
    epochs = [r for r in records if "train_loss" in r]

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=80)
        plt.close(fig)
        written.append(out / name)

    if steps:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], label="train (step)")
        if any("test_loss" in r for r in epochs):
            ax.plot([r["step"] for r in epochs if "test_loss" in r],
                    [r["test_loss"] for r in epochs if "test_loss" in r], "o-", label="test")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
        save(fig, "loss.png")
    metric_keys = [k for k in ("top1", "top5", "mAP") if any(k in r for r in epochs)]
    if metric_keys:
        fig, ax = plt.subplots(figsize=(5, 3))
        for key in metric_keys:
            ax.plot([r["epoch"] for r in epochs if key in r], [r[key] for r in epochs if key in r], "o-", label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("%")
        ax.legend()
        save(fig, "accuracy.png")
    scaled = [r for r in steps if r.get("scales")]
    if scaled:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for layer in scaled[-1]["scales"]:
            ax.plot([r["step"] for r in scaled], [r["scales"].get(layer, float("nan")) for r in scaled],
                    linewidth=0.8)
        ax.set_xlabel("step")
        ax.set_ylabel("λ (one line per layer)")
        save(fig, "scales.png")
    return written
