"""Figures of a reproduction (small PNGs, matplotlib Agg): gain heatmaps, accuracy curves, λ over training."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from .aggregate import MODALITY_ORDER, SETTING_ORDER, ArmSummary, gain_matrix
from .convergence import pretrain_loss_curves
from .records import epoch_curve, lambda_history

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
        curve = epoch_curve(row)
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


def lambda_panels(rows: Sequence[dict[str, Any]], seed: int | None = None
                  ) -> list[tuple[dict[str, Any], list[tuple[int, dict[str, float]]]]]:
    """``[(row, λ history), ...]``: per target and pathway arm, ``seed`` or the lowest seed with a history."""
    chosen: dict[tuple[str, str], tuple[dict[str, Any], list[tuple[int, dict[str, float]]]]] = {}
    for row in sorted((r for r in rows if r.get("aux") and seed in (None, r["seed"])), key=lambda r: r["seed"]):
        key = (row["modality"], row["arm"])
        if key not in chosen:
            history = lambda_history(row)
            if history:
                chosen[key] = (row, history)
    order = sorted(chosen, key=lambda k: (MODALITY_ORDER.index(k[0]) if k[0] in MODALITY_ORDER else 9, k[1]))
    return [chosen[key] for key in order]


def plot_lambda_layers(rows: Sequence[dict[str, Any]], setting: str, group: str, path: Path,
                       seed: int | None = None) -> Path | None:
    """λ of every layer over training: one panel per target and pathway arm.

    Each panel draws ``seed``, or by default the lowest seed whose row has a λ history (rows
    brought from another machine without their run folders may have none).
    """
    histories = lambda_panels([r for r in rows if r["setting"] == setting and r["group"] == group], seed)
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
        ax.set_title(f"{row['modality']} ← {row['arm']}, seed {row['seed']}", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("step", fontsize=7)
        ax.set_ylabel("λ (each line a layer)", fontsize=7)
    fig.suptitle(f"λ over training, {group}, {setting}", fontsize=9)
    return _save(fig, path)


def plot_lambda_magnitude(rows: Sequence[dict[str, Any]], setting: str, group: str, path: Path,
                          modality: str = "image") -> Path | None:
    """Mean |λ| over layers vs step, one line per arm, and final ‖λW′‖/‖W‖.

    The curves are of one seed: the lowest among those where the most arms kept their λ history.
    """
    pool = [r for r in rows if r["setting"] == setting and r["modality"] == modality and r.get("aux")
            and r["preset"] == "tiny"]
    candidates = [r for r in pool if r["group"] == group]
    if group != "main":  # add the paper-default runs (main grid) of the same auxiliary sources
        sources = {r["aux"] for r in candidates}
        candidates += [r for r in pool if r["group"] == "main" and r["aux"] in sources and not r.get("pathway")]
    if not candidates:
        return None
    histories = [(row, lambda_history(row)) for row in candidates]
    with_history: dict[int, int] = {}
    for row, history in histories:
        with_history[row["seed"]] = with_history.get(row["seed"], 0) + bool(history)
    seed = min(with_history, key=lambda s: (-with_history[s], s))
    plt = _pyplot()
    fig, (ax, bar) = plt.subplots(1, 2, figsize=(9, 3.2))
    names, deltas = [], []
    for row, history in sorted(((r, h) for r, h in histories if r["seed"] == seed and h), key=lambda rh: rh[0]["arm"]):
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
    if ax.get_lines():  # none when no row has a λ history
        ax.legend(fontsize=6)
    ax.tick_params(labelsize=7)
    if names:
        bar.barh(range(len(names)), deltas)
        bar.set_yticks(range(len(names)), names, fontsize=7)
        if max(deltas) > 10 * min(deltas) > 0:  # below a decade, log-axis minor tick labels overlap
            bar.set_xscale("log")
        bar.set_xlabel("final ‖λW′‖/‖W‖ (mean over layers and seeds)", fontsize=8)
        bar.tick_params(labelsize=7)
    return _save(fig, path)


def plot_gain_vs_budget(summaries: Sequence[ArmSummary], path: Path) -> Path | None:
    """Gain over the same-budget baseline (± 2·SE) against the training budget, one panel per target.

    Reads the budget study's arms (``<arm>-b<k>x``) and, as the last point (diamond, dotted line:
    another recipe), the same arm of the converged study; a growing pathway gain above the random
    control's would say the benefit comes with training, a vanishing one that it does not.
    """
    from .convergence import budget_points

    points = budget_points(summaries)
    if not points:
        return None
    panels = list(dict.fromkeys((p.setting, p.modality) for p in points))
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), squeeze=False)
    for ax, (setting, modality) in zip(axes[0], panels):
        members = [p for p in points if (p.setting, p.modality) == (setting, modality)]
        converged_x = 4 * max(p.multiplier for p in members if p.multiplier is not None)
        position = {p.budget: converged_x if p.multiplier is None else p.multiplier for p in members}
        for arm in dict.fromkeys(p.arm for p in members):
            line = [p for p in members if p.arm == arm]
            steps = [p for p in line if p.multiplier is not None]
            drawn = ax.errorbar([p.multiplier for p in steps], [p.gain for p in steps],
                                yerr=[_two_se(p.se) for p in steps], marker="o", markersize=3, linewidth=1, capsize=2,
                                label=arm)
            for converged in line[len(steps):]:  # budget_points puts it last, after at least one step
                color = drawn[0].get_color()
                ax.errorbar(converged_x, converged.gain, yerr=_two_se(converged.se), marker="D", markersize=4,
                            capsize=2, color=color)
                ax.plot([steps[-1].multiplier, converged_x], [steps[-1].gain, converged.gain], linestyle=":",
                        linewidth=1, color=color)
        baselines = {p.budget: p.baseline for p in members}
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_xscale("log", base=2)
        ax.set_xticks([position[b] for b in baselines], [f"{b}\n({baselines[b]:.1f} %)" for b in baselines],
                      fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("budget (baseline top-1)", fontsize=8)
        ax.set_ylabel("gain over baseline, points", fontsize=8)
        ax.set_title(f"{modality} target ({setting})", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    return _save(fig, path)


def _two_se(se: float) -> float:
    """The error bar of a gain: 2·SE, or 0 where too few seeds give no SE."""
    return 0.0 if math.isnan(se) else 2 * se


def plot_lambda_agreement(rows: Sequence[dict[str, Any]], path: Path, setting: str = "scratch") -> Path | None:
    """Per layer: sign agreement of final λ across seeds (pathway and controls) and ‖λW′‖/‖W‖ at the end.

    One row of two panels per target (main grid arms); the dashed line marks chance (0.5).
    """
    from .lambda_analysis import lambda_summaries

    summaries = [s for s in lambda_summaries(rows) if s.setting == setting and s.group == "main"
                 and len(s.seeds) >= 2]
    targets = [m for m in MODALITY_ORDER if any(s.modality == m for s in summaries)]
    if not targets:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(targets), 2, figsize=(10, 2.6 * len(targets)), squeeze=False)
    for (agree, delta), target in zip(axes, targets):
        for s in (s for s in summaries if s.modality == target):
            layers = list(s.across_seeds)
            agree.plot(range(len(layers)), [s.across_seeds[k] for k in layers], marker="o", markersize=3,
                       linestyle="none", alpha=0.7, label=f"{s.arm} (n={len(s.seeds)}, mean {s.across_seeds_mean:.2f})")
            delta.plot(range(len(layers)), [max(s.rel_delta.get(k, math.nan), 1e-12) for k in layers],
                       linewidth=0.8, label=s.arm)
        agree.axhline(0.5, color="grey", linestyle="--", linewidth=0.6)
        agree.set_ylim(-0.05, 1.05)
        agree.set_ylabel("sign agreement\nacross seeds", fontsize=8)
        agree.set_title(f"{target} target ({setting}): final λ signs", fontsize=9)
        delta.set_yscale("log")
        delta.set_ylabel("final ‖λW′‖/‖W‖", fontsize=8)
        delta.set_title(f"{target} target: how much the pathway changes W", fontsize=9)
        for ax in (agree, delta):
            ax.set_xlabel("layer (block order: qkv, proj, fc1, fc2)", fontsize=7)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=5)
    return _save(fig, path)


def plot_top_layer_lambda(rows: Sequence[dict[str, Any]], path: Path, setting: str = "scratch") -> Path | None:
    """λ over training in the layer where each target's pathway engages most, every main-grid arm and seed.

    One panel per target; the layer is the pathway arm's :attr:`LambdaProfile.top_layer`. Colours are
    arms (pretrained and its controls), line styles seeds: curves that coincide across arms at equal
    seeds show that what W′ holds does not steer λ there.
    """
    from .lambda_analysis import control_of
    from .lambda_profile import lambda_profiles

    profiles = [p for p in lambda_profiles(rows) if p.setting == setting and p.group == "main"
                and control_of(p.arm) is None and p.vs_controls]
    panels = []
    for profile in sorted(profiles, key=lambda p: (MODALITY_ORDER.index(p.modality)
                                                   if p.modality in MODALITY_ORDER else 9, p.arm)):
        arms = [profile.arm, *sorted(profile.vs_controls)]
        curves = [(r["arm"], r["seed"], lambda_history(r)) for r in rows
                  if r["setting"] == setting and r["modality"] == profile.modality and r["arm"] in arms]
        curves = [(arm, seed, h) for arm, seed, h in curves if h and profile.top_layer in h[-1][1]]
        if curves:
            panels.append((profile, arms, curves))
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.0, 4.2 * len(panels)), 3.2), squeeze=False)
    styles = ["-", "--", ":", "-.", (0, (1, 3))]
    for ax, (profile, arms, curves) in zip(axes.flat, panels):
        colours = {arm: f"C{i}" for i, arm in enumerate(arms)}
        seeds = sorted({seed for _, seed, _ in curves})
        for arm, seed, history in sorted(curves, key=lambda c: (arms.index(c[0]), c[1])):
            ax.plot([step for step, _ in history], [scales[profile.top_layer] for _, scales in history],
                    color=colours[arm], linestyle=styles[seeds.index(seed) % len(styles)], linewidth=1,
                    label=f"{arm}, seed {seed}")
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_title(f"{profile.modality} target: λ of {profile.top_layer}", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("λ", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=5)
    fig.suptitle(f"λ where the pathway engages most ({setting}); colour: arm, line style: seed", fontsize=9)
    return _save(fig, path)


def plot_pretrain_losses(curves: dict[str, list[tuple[float, float]]], path: Path) -> Path | None:
    """Reconstruction loss per epoch of every MAE pretraining (normalised to the first epoch).

    Args:
        curves: ``{pretraining: [(epoch, train loss), ...]}`` (see
            :func:`m2pt.experiments.convergence.pretrain_loss_curves`).
        path: The PNG to write.
    """
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    for name, curve in curves.items():
        first = curve[0][1] or 1.0
        ax.plot([e for e, _ in curve], [loss / first for _, loss in curve], marker="o", markersize=2,
                linewidth=1, label=f"{name} ({curve[-1][1]:.3f})")
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel("train loss / first epoch's", fontsize=8)
    ax.set_title("MAE pretraining of the auxiliaries (final loss)", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    return _save(fig, path)


def write_figures(summaries: Sequence[ArmSummary], rows: Sequence[dict[str, Any]], folder: Path) -> list[Path]:
    """Every figure of a results folder into ``folder`` (missing data skips a figure)."""
    written: list[Path | None] = [plot_gain_vs_budget(summaries, folder / "gain_vs_budget.png"),
                                  plot_pretrain_losses(pretrain_loss_curves(folder.parent), folder / "pretrain_loss.png")]
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
        written.append(plot_lambda_agreement(rows, folder / f"lambda_agreement_{setting}.png", setting))
        written.append(plot_top_layer_lambda(rows, folder / f"lambda_top_layer_{setting}.png", setting))
    return [p for p in written if p is not None]
