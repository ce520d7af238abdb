"""Has a target reached its plateau, has an auxiliary finished pretraining, does the gain grow with budget?

* **Plateau** of a target: its baseline trained twice as long (arm ``baseline-x2``, same data
  and seeds) improves on the baseline by less than :data:`PLATEAU_POINTS` (1 accuracy point).
* **Pretraining**: the reconstruction loss curve of each MAE pretraining, and the relative drop
  of its loss over the last half of the epochs (small once it has flattened). Whether an
  auxiliary is at its plateau for the targets is in :mod:`m2pt.experiments.aux_plateau`.
* **Gain versus budget**: the gains of the budget study's arms (``<arm>-b<k>x``) per multiplier,
  and the same arms of the converged recipe (group ``main``) as the last point.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from m2pt.train.run_dir import FINAL

from .aggregate import ArmSummary, fmt_value
from .runner import FINGERPRINT_FILE

#: A target is at its plateau when doubling its training improves it by less than this (points).
PLATEAU_POINTS = 1.0
PLATEAU_ARM = "baseline-x2"
BUDGET_ARM = re.compile(r"^(?P<arm>.+)-b(?P<multiplier>\d+)x$")


@dataclass
class PlateauCheck:
    """The plateau check of one (setting, target)."""

    setting: str
    modality: str
    baseline: float
    doubled: float
    gain: float
    se: float
    n: int
    baseline_train_loss: float = math.nan
    """Final mean train loss of the baseline over the compared seeds (NaN where no row has it)."""
    doubled_train_loss: float = math.nan
    """The same for the run twice as long."""

    @property
    def verdict(self) -> str:
        """See :func:`plateau_verdict` (of the gain)."""
        return plateau_verdict(self.gain, self.se, self.n)


def plateau_verdict(change: float, se: float, n: int) -> str:
    """``"yes"`` when ``change`` is below :data:`PLATEAU_POINTS` by more than its 2·SE, ``"no"``
    when above it by more, else ``"undecided"``; without a standard error (fewer than 3 seeds)
    the change alone decides, marked with the number of seeds."""
    if math.isnan(se):
        seeds = f"{n} seed{'' if n == 1 else 's'}"
        return f"{'yes' if change < PLATEAU_POINTS else 'no'} ({seeds}, no 2·SE)"
    if change + 2 * se < PLATEAU_POINTS:
        return "yes"
    if change - 2 * se > PLATEAU_POINTS:
        return "no"
    return "undecided"


def plateau_checks(summaries: Sequence[ArmSummary], rows: Sequence[dict[str, Any]] = ()) -> list[PlateauCheck]:
    """One :class:`PlateauCheck` per target with a finished ``baseline-x2`` arm.

    The check compares the seeds both arms have (see :func:`~m2pt.experiments.aggregate.summarize`),
    with the paired SE from :data:`~m2pt.experiments.aggregate.MIN_PAIRS` shared seeds on. The
    final train losses (from ``rows``, on the same seeds) say how far each run got: one that ends
    at its floor (0.50 with label smoothing 0.1 over 10 classes) has fitted its training set.
    """
    out = []
    for s in summaries:
        if s.arm != PLATEAU_ARM or not s.baseline_arm or math.isnan(s.gain):
            continue
        se = s.paired_se if not math.isnan(s.paired_se) else s.se_diff
        losses = {arm: _train_losses(rows, s.setting, s.modality, arm) for arm in (s.baseline_arm, s.arm)}
        shared = set(losses[s.baseline_arm]) & set(losses[s.arm])
        baseline_loss, doubled_loss = (_mean([losses[arm][seed] for seed in shared]) for arm in (s.baseline_arm, s.arm))
        out.append(PlateauCheck(s.setting, s.modality, s.baseline_mean, s.baseline_mean + s.gain, s.gain, se,
                                s.baseline_n, baseline_loss, doubled_loss))
    return out


def _train_losses(rows: Sequence[dict[str, Any]], setting: str, modality: str, arm: str) -> dict[int, float]:
    return {row["seed"]: float(row["metrics"]["train_loss"]) for row in rows
            if (row.get("setting"), row.get("modality"), row.get("arm")) == (setting, modality, arm)
            and isinstance(row.get("metrics", {}).get("train_loss"), (int, float))}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def plateau_markdown(checks: Sequence[PlateauCheck]) -> str:
    """The plateau checks as a Markdown section ('' without any)."""
    if not checks:
        return ""
    lines = [f"### Plateau check: baseline trained twice as long (reached when the gain is < {PLATEAU_POINTS:g} "
             "point)", "",
             f"yes: the gain is below {PLATEAU_POINTS:g} point by more than its 2·SE; no: above it by more; "
             "undecided: within 2·SE of it.", "",
             "| setting | target | baseline top-1 % | 2x epochs top-1 % | gain | 2·SE | n | plateau | "
             "final train loss, baseline → 2x |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in checks:
        losses = "–" if math.isnan(c.baseline_train_loss) else \
            f"{c.baseline_train_loss:.3f} → {c.doubled_train_loss:.3f}"
        lines.append(f"| {c.setting} | {c.modality} | {c.baseline:.2f} | {c.doubled:.2f} | {c.gain:+.2f} | "
                     f"{fmt_value(2 * c.se)} | {c.n} | {c.verdict} | {losses} |")
    lines.append("")
    return "\n".join(lines)


#: The loss curves of a study's pretrainings, kept beside ``results.jsonl`` so that they outlive the
#: pretraining folders (``{folder name: {"fingerprint": ..., "curve": [[epoch, loss], ...]}}``).
PRETRAIN_CURVES_FILE = "pretrain_curves.json"


def _folder_curve(metrics: Path) -> list[tuple[float, float]]:
    points = []
    for line in metrics.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "train_loss" in record and "epoch" in record:
            points.append((float(record["epoch"]), float(record["train_loss"])))
    return points


def _finished_pretrain_metrics(output: Path) -> list[Path]:
    """The ``metrics.jsonl`` of the study's pretrainings that finished.

    A pretraining still in progress (say, redone on a new machine) would replace the finished
    curve of the one before with the first epochs of its own.
    """
    return [metrics for metrics in sorted((output / "pretrain").glob("*/metrics.jsonl"))
            if (metrics.parent / FINAL).is_file()]


def _folder_fingerprint(folder: Path) -> Optional[str]:
    path = folder / FINGERPRINT_FILE
    return path.read_text().strip() if path.is_file() else None


def read_pretrain_curves(path: Path) -> dict[str, dict[str, Any]]:
    """The entries of a :data:`PRETRAIN_CURVES_FILE` (``{}`` when it does not exist).

    Raises:
        ValueError: The file is not valid JSON.
    """
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete it to rebuild it from the "
                         "pretraining folders") from error


def pretrain_loss_curves(output: Path) -> dict[str, list[tuple[float, float]]]:
    """``{pretraining: [(epoch, train loss), ...]}`` of a study's MAE pretrainings.

    Read from ``output/pretrain/<name>/metrics.jsonl`` of the pretrainings that finished; a
    pretraining whose folder is gone (the study moved to another machine with its
    ``results.jsonl``) or is being redone comes from :data:`PRETRAIN_CURVES_FILE`.
    """
    curves = {name: [(float(e), float(loss)) for e, loss in entry["curve"]]
              for name, entry in read_pretrain_curves(output / PRETRAIN_CURVES_FILE).items()}
    for metrics in _finished_pretrain_metrics(output):
        points = _folder_curve(metrics)
        if points:
            curves[metrics.parent.name] = points
    return dict(sorted(curves.items()))


def record_pretrain_curves(output: Path) -> Optional[Path]:
    """Write :data:`PRETRAIN_CURVES_FILE`: the curves recorded before, updated from the finished pretrainings.

    Returns:
        The file, or None when the study has no pretraining curve.
    """
    recorded = read_pretrain_curves(output / PRETRAIN_CURVES_FILE)
    for metrics in _finished_pretrain_metrics(output):
        points = _folder_curve(metrics)
        if points:
            recorded[metrics.parent.name] = {"fingerprint": _folder_fingerprint(metrics.parent),
                                             "curve": [list(point) for point in points]}
    if not recorded:
        return None
    return write_pretrain_curves(output / PRETRAIN_CURVES_FILE, recorded)


def write_pretrain_curves(path: Path, entries: dict[str, dict[str, Any]]) -> Path:
    """Write a :data:`PRETRAIN_CURVES_FILE` whole or not at all (a temporary file, then a rename)."""
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(dict(sorted(entries.items())), indent=1) + "\n")
    temporary.replace(path)
    return path


def late_relative_drop(curve: Sequence[tuple[float, float]]) -> float:
    """Relative drop of the loss over the second half of the epochs: ``(L_mid - L_end) / L_mid``."""
    if len(curve) < 2:
        return math.nan
    middle = curve[(len(curve) - 1) // 2][1]
    return (middle - curve[-1][1]) / middle if middle else math.nan


def pretrain_markdown(curves: dict[str, list[tuple[float, float]]]) -> str:
    """MAE pretraining losses as a Markdown section ('' without any)."""
    if not curves:
        return ""
    lines = ["### MAE pretraining of the auxiliaries: reconstruction loss", "",
             "| pretraining | epochs | first epoch loss | final loss | drop over the last half of the epochs |",
             "|---|---|---|---|---|"]
    for name, curve in curves.items():
        drop = late_relative_drop(curve)
        lines.append(f"| {name} | {curve[-1][0]:g} | {curve[0][1]:.4f} | {curve[-1][1]:.4f} | "
                     f"{'–' if math.isnan(drop) else f'{100 * drop:.1f} %'} |")
    lines.append("")
    return "\n".join(lines)


@dataclass
class BudgetPoint:
    """One arm of the gain-versus-budget study at one budget.

    ``multiplier`` is the training set × the quick budget, or ``None`` for the converged recipe
    (the arm of group ``main``: longer training, its own warmup and clipping).
    """

    setting: str
    modality: str
    arm: str
    multiplier: Optional[int]
    baseline: float
    gain: float
    se: float

    @property
    def budget(self) -> str:
        """``"4x"``, or ``"converged"`` for the converged recipe."""
        return "converged" if self.multiplier is None else f"{self.multiplier}x"


def budget_points(summaries: Sequence[ArmSummary]) -> list[BudgetPoint]:
    """The gains of the budget study (arms named ``<arm>-b<k>x`` with a baseline), by multiplier.

    Each (setting, target, arm) of the budget study ends with the same arm of the converged recipe
    (group ``main``) when the study has it, so the question "does the gain grow with training?"
    reads up to the plateau.
    """
    out = []
    for s in summaries:
        match = BUDGET_ARM.match(s.arm)
        if s.group != "budget" or not match or not s.baseline_arm:
            continue
        out.append(_budget_point(s, match["arm"], int(match["multiplier"])))
    studied = {(p.setting, p.modality, p.arm) for p in out}
    out += [_budget_point(s, s.arm, None) for s in summaries
            if s.group == "main" and s.baseline_arm and (s.setting, s.modality, s.arm) in studied]
    last = float("inf")
    return sorted(out, key=lambda p: (p.setting, p.modality, p.arm, last if p.multiplier is None else p.multiplier))


def _budget_point(summary: ArmSummary, arm: str, multiplier: Optional[int]) -> BudgetPoint:
    se = summary.paired_se if not math.isnan(summary.paired_se) else summary.se_diff
    return BudgetPoint(summary.setting, summary.modality, arm, multiplier, summary.baseline_mean, summary.gain, se)


def budget_markdown(points: Sequence[BudgetPoint]) -> str:
    """The gain-versus-budget study as a Markdown section ('' without any)."""
    if not points:
        return ""
    lines = ["### Gain versus budget (training set × the quick budget, then the converged recipe; gain over the "
             "same-budget baseline)", "",
             "| setting | target | arm | budget | baseline top-1 % | gain | 2·SE |", "|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.setting} | {p.modality} | {p.arm} | {p.budget} | {p.baseline:.2f} | "
                     f"{p.gain:+.2f} | {fmt_value(2 * p.se)} |")
    lines.append("")
    return "\n".join(lines)


def study_sections(summaries: Sequence[ArmSummary], rows: Sequence[dict[str, Any]],
                   output: Optional[Path] = None) -> str:
    """The pretrained auxiliaries against their controls, plateau checks, pretraining losses, gain versus
    budget and the λ study (signs, and where λ engages) as Markdown."""
    from .aux_plateau import aux_plateau_checks, aux_plateau_markdown
    from .controls import control_comparisons, controls_markdown
    from .lambda_analysis import lambda_markdown, lambda_summaries
    from .lambda_profile import lambda_profile_markdown, lambda_profiles
    from .provenance import provenance_markdown

    curves = pretrain_loss_curves(output) if output is not None else {}
    parts = [controls_markdown(control_comparisons(summaries, rows)), plateau_markdown(plateau_checks(summaries, rows)),
             aux_plateau_markdown(aux_plateau_checks(summaries, rows, curves)), pretrain_markdown(curves),
             budget_markdown(budget_points(summaries)), lambda_markdown(lambda_summaries(rows)),
             lambda_profile_markdown(lambda_profiles(rows)), provenance_markdown(rows)]
    return "\n".join(p for p in parts if p)
