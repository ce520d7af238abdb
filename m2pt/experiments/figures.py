"""Figures of a reproduction (small PNGs, matplotlib Agg): gain heatmaps, accuracy curves, λ over training."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from .aggregate import MODALITY_ORDER, SETTING_ORDER, ArmSummary, gain_matrix
from .records import iter_lambda_history

DPI = 72


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


def plot_heatmap(summaries: Sequence[ArmSummary], setting: str, path: Path) -> Path | None:
    """Gain over baseline (accuracy points), auxiliary rows × target columns; * marks > 2 SE."""
    rows, cols, grid = gain_matrix(summaries, setting)
    gains = [[math.nan if cell is None else cell.gain for cell in row] for row in grid]
    flags = [[cell is not None and bool(cell.significant) for cell in row] for row in grid]
    if not rows or not cols:
        return None
    plt = _pyplot()
    import numpy as np

    data = np.array(gains, dtype=float)
    bound = max(0.5, float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 0.5)
    fig, ax = plt.subplots(figsize=(max(5.0, 2.6 + 1.1 * len(cols)), 1.1 + 0.45 * len(rows)))
    image = ax.imshow(np.ma.masked_invalid(data), cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(len(cols)), [f"{c}\n(target)" for c in cols], fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if math.isfinite(data[i, j]):
                ax.text(j, i, f"{data[i, j]:+.2f}{'*' if flags[i][j] else ''}", ha="center", va="center", fontsize=8)
            else:
                ax.text(j, i, "–", ha="center", va="center", fontsize=8, color="grey")
    ax.set_title(f"gain over baseline, top-1 points\n({setting}; * > 2 SE)", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)


def _epoch_metric(folder: Path) -> list[tuple[float, float]]:
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            key = "top1" if "top1" in record else ("mAP" if "mAP" in record else None)
            if key and "train_loss" in record:
                out.append((float(record["epoch"]), float(record[key])))
    return out


def plot_accuracy_curves(rows: Sequence[dict[str, Any]], setting: str, group: str, path: Path) -> Path | None:
    """Mean test accuracy per epoch (over seeds), one panel per target, one line per arm."""
    selected = [r for r in rows if r["setting"] == setting and (r["group"] == group or r["baseline_arm"] is None)]
    by_cell: dict[tuple[str, str], list[list[tuple[float, float]]]] = {}
    group_targets = {r["modality"] for r in rows if r["setting"] == setting and r["group"] == group}
    for row in selected:
        if row["modality"] not in group_targets:
            continue
        if group == "minilm" and row["preset"] != "small" or group != "minilm" and row["preset"] == "small":
            continue
        curve = _epoch_metric(Path(row["folder"]))
        if curve:
            by_cell.setdefault((row["modality"], row["arm"]), []).append(curve)
    targets = [m for m in MODALITY_ORDER if any(k[0] == m for k in by_cell)]
    if not targets:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 2.8), squeeze=False)
    for ax, target in zip(axes[0], targets):
        for (modality, arm), curves in sorted(by_cell.items()):
            if modality != target:
                continue
            length = min(len(c) for c in curves)
            epochs = [curves[0][i][0] for i in range(length)]
            means = [sum(c[i][1] for c in curves) / len(curves) for i in range(length)]
            ax.plot(epochs, means, "o-", markersize=3, linewidth=1, label=f"{arm} (n={len(curves)})")
        ax.set_title(f"{target} ({setting})", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("test top-1 %", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    return _save(fig, path)


def plot_lambda_layers(rows: Sequence[dict[str, Any]], setting: str, group: str, path: Path,
                       seed: int | None = None) -> Path | None:
    """λ of every layer over training (one panel per pathway arm and target, the lowest seed)."""
    candidates = [r for r in rows if r["setting"] == setting and r["group"] == group and r.get("aux")]
    if not candidates:
        return None
    seed = min(r["seed"] for r in candidates) if seed is None else seed
    panels = [r for r in sorted(candidates, key=lambda r: (MODALITY_ORDER.index(r["modality"])
                                                           if r["modality"] in MODALITY_ORDER else 9, r["arm"]))
              if r["seed"] == seed]
    histories = [(r, list(iter_lambda_history(Path(r["folder"])))) for r in panels]
    histories = [(r, h) for r, h in histories if h]
    if not histories:
        return None
    plt = _pyplot()
    columns = min(4, len(histories))
    lines = math.ceil(len(histories) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(3.0 * columns, 2.3 * lines), squeeze=False)
    for ax in axes.flat[len(histories):]:
        ax.axis("off")
    for ax, (row, history) in zip(axes.flat, histories):
        steps = [s for s, _ in history]
        for layer in history[-1][1]:
            ax.plot(steps, [scales.get(layer, math.nan) for _, scales in history], linewidth=0.6)
        ax.set_title(f"{row['modality']} ← {row['arm']}", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("step", fontsize=7)
        ax.set_ylabel("λ (each line a layer)", fontsize=7)
    fig.suptitle(f"λ over training, {group}, {setting}, seed {seed}", fontsize=9)
    return _save(fig, path)


def plot_lambda_magnitude(rows: Sequence[dict[str, Any]], setting: str, group: str, path: Path,
                          modality: str = "image") -> Path | None:
    """Mean |λ| over layers vs step (log scale, lowest seed), one line per arm, and final ‖λW′‖/‖W‖."""
    pool = [r for r in rows if r["setting"] == setting and r["modality"] == modality and r.get("aux")
            and r["preset"] == "tiny"]
    candidates = [r for r in pool if r["group"] == group]
    if group != "main":  # add the paper-default runs (main grid) of the same auxiliary sources
        sources = {r["aux"] for r in candidates}
        candidates += [r for r in pool if r["group"] == "main" and r["aux"] in sources and not r.get("pathway")]
    if not candidates:
        return None
    seed = min(r["seed"] for r in candidates)
    plt = _pyplot()
    fig, (ax, bar) = plt.subplots(1, 2, figsize=(9, 3.2))
    names, deltas = [], []
    for row in sorted((r for r in candidates if r["seed"] == seed), key=lambda r: r["arm"]):
        history = list(iter_lambda_history(Path(row["folder"])))
        if not history:
            continue
        means = [sum(abs(v) for v in scales.values()) / len(scales) for _, scales in history]
        ax.plot([s for s, _ in history], [max(m, 1e-12) for m in means], linewidth=1, label=row["arm"])
    by_arm: dict[str, list[float]] = {}
    for row in candidates:
        value = (row.get("pathway_stats") or {}).get("rel_delta_mean")
        if value is not None:
            by_arm.setdefault(row["arm"], []).append(value)
    for arm, values in sorted(by_arm.items()):
        names.append(arm)
        deltas.append(sum(values) / len(values))
    ax.set_yscale("log")
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("mean |λ| over layers", fontsize=8)
    ax.set_title(f"{modality} target, {setting}, seed {seed}", fontsize=9)
    ax.legend(fontsize=6)
    ax.tick_params(labelsize=7)
    if names:
        bar.barh(range(len(names)), deltas)
        bar.set_yticks(range(len(names)), names, fontsize=7)
        bar.set_xscale("log")
        bar.set_xlabel("final ‖λW′‖/‖W‖ (mean over layers and seeds)", fontsize=8)
        bar.tick_params(labelsize=7)
    return _save(fig, path)


def write_figures(summaries: Sequence[ArmSummary], rows: Sequence[dict[str, Any]], folder: Path) -> list[Path]:
    """Every figure of a results folder into ``folder`` (missing data skips a figure)."""
    written: list[Path | None] = []
    settings = [s for s in SETTING_ORDER if any(r["setting"] == s for r in rows)]
    groups = sorted({r["group"] for r in rows})
    for setting in settings:
        written.append(plot_heatmap(summaries, setting, folder / f"heatmap_{setting}.png"))
        for group in groups:
            written.append(plot_accuracy_curves(rows, setting, group, folder / f"accuracy_{group}_{setting}.png"))
            written.append(plot_lambda_layers(rows, setting, group, folder / f"lambda_layers_{group}_{setting}.png"))
        if any(r["group"] == "lambda" and r["setting"] == setting for r in rows):
            written.append(plot_lambda_magnitude(rows, setting, "lambda", folder / f"lambda_study_{setting}.png"))
        written.append(plot_lambda_magnitude(rows, setting, "main", folder / f"lambda_main_image_{setting}.png"))
    return [p for p in written if p is not None]
