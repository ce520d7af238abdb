"""Aggregate results rows: mean ± std per arm, gain over its baseline, and a 2-SE test.

A gain compares an arm with its baseline on the seeds both have (all runs where they share
none). The standard error of a gain is that of a difference of two independent means,
``SE = sqrt(s_a² / n_a + s_b² / n_b)`` with sample standard deviations (``ddof=1``); a gain is
called significant when ``|gain| > 2 SE``. With fewer than three runs on either side
(:data:`MIN_PAIRS`) the SE is not reported and the test reads ``n/a``: a standard deviation of two
runs rests on one degree of freedom, and two runs that end at the same accuracy (a multiple of
100/test_size) give ``s = 0``, so ``|gain| > 2 SE`` would call noise significant.

Because an arm and its baseline share the seed (same initialisation of the target and same
data order), the paired test is also reported: the per-seed differences ``d_i = a_i - b_i``
have mean ``d̄`` and ``SE_paired = s_d / sqrt(n)``; significant when ``|d̄| > 2 SE_paired``.
It too needs at least three seeds (:data:`MIN_PAIRS`), for the same reason.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

MIN_PAIRS = 3
GROUP_ORDER = ("main", "minilm", "fixacc", "budget", "plateau", "auxplateau", "ablation", "lambda")
SETTING_ORDER = ("scratch", "mae")
MODALITY_ORDER = ("image", "video", "point", "audio")


def metric_of(row: dict[str, Any]) -> Optional[float]:
    """The headline metric of a row: top-1 accuracy (%), or mAP (%) for multi-label data."""
    metrics = row.get("metrics", {})
    value = metrics.get("top1", metrics.get("mAP"))
    return None if value is None else float(value)


def metrics_by_seed(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], dict[int, float]]:
    """``{(setting, target, arm): {seed: metric}}`` of the rows that have a metric."""
    out: dict[tuple[str, str, str], dict[int, float]] = {}
    for row in rows:
        value = metric_of(row)
        if value is not None:
            out.setdefault((row["setting"], row["modality"], row["arm"]), {})[row["seed"]] = value
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``nan`` std for fewer than two values)."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def se_of_difference(std_a: float, n_a: int, std_b: float, n_b: int) -> float:
    """``sqrt(s_a²/n_a + s_b²/n_b)``; ``nan`` when either side has fewer than :data:`MIN_PAIRS` runs."""
    if n_a < MIN_PAIRS or n_b < MIN_PAIRS or math.isnan(std_a) or math.isnan(std_b):
        return math.nan
    return math.sqrt(std_a ** 2 / n_a + std_b ** 2 / n_b)


@dataclass
class ArmSummary:
    """One row of the aggregate table: the arm on all its seeds; the ``baseline_*`` columns, the gain
    and its tests on the seeds the arm shares with its baseline."""

    group: str
    setting: str
    modality: str
    arm: str
    aux: Optional[str]
    preset: str
    n: int
    mean: float
    std: float
    baseline_arm: Optional[str] = None
    baseline_n: int = 0
    baseline_mean: float = math.nan
    baseline_std: float = math.nan
    gain: float = math.nan
    se_diff: float = math.nan
    significant: Optional[bool] = None
    paired_n: int = 0
    paired_gain: float = math.nan
    paired_se: float = math.nan
    paired_significant: Optional[bool] = None
    abs_lambda_mean: float = math.nan
    rel_delta_mean: float = math.nan
    wall_seconds_mean: float = math.nan

    @property
    def verdict(self) -> str:
        """``"yes"`` / ``"no"`` for the 2-SE test, ``"n/a"`` without a baseline or enough runs."""
        return _verdict(self.significant)

    @property
    def paired_verdict(self) -> str:
        """The same for the paired (same-seed) test."""
        return _verdict(self.paired_significant)


def _verdict(flag: Optional[bool]) -> str:
    if flag is None:
        return "n/a"
    return "yes" if flag else "no"


def paired_difference(arm: dict[int, float], baseline: dict[int, float]) -> tuple[int, float, float]:
    """``(n, mean, SE)`` of the per-seed differences over the seeds both sides have (SE ``nan``
    below :data:`MIN_PAIRS` pairs)."""
    seeds = sorted(set(arm) & set(baseline))
    diffs = [arm[s] - baseline[s] for s in seeds]
    mean, std = mean_std(diffs)
    return len(diffs), mean, (std / math.sqrt(len(diffs)) if len(diffs) >= MIN_PAIRS else math.nan)


def _mean(values: Iterable[Optional[float]]) -> float:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def table_order(group: str, setting: str, modality: str) -> tuple[int, int, int]:
    """Sort key of a table row: group, setting and target in the report's order, unknown names last."""
    def index(seq: Sequence[str], value: str) -> int:
        return seq.index(value) if value in seq else len(seq)
    return index(GROUP_ORDER, group), index(SETTING_ORDER, setting), index(MODALITY_ORDER, modality)


def _sort_key(s: ArmSummary) -> tuple:
    return (*table_order(s.group, s.setting, s.modality), s.baseline_arm is not None, s.arm)


def summarize(rows: Iterable[dict[str, Any]]) -> list[ArmSummary]:
    """Aggregate rows (one per run) into one :class:`ArmSummary` per (setting, target, arm).

    A baseline arm appears in the group of every arm that compares with it; its own row sits in
    the group it was defined in.
    """
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if metric_of(row) is None:
            continue
        cells.setdefault((row["setting"], row["modality"], row["arm"]), []).append(row)
    out: list[ArmSummary] = []
    for (setting, modality, arm), members in cells.items():
        values = [metric_of(r) for r in members]
        mean, std = mean_std(values)  # type: ignore[arg-type]
        first = members[0]
        stats = [r.get("pathway_stats") or {} for r in members]
        summary = ArmSummary(
            group=first.get("group", "main"), setting=setting, modality=modality, arm=arm, aux=first.get("aux"),
            preset=first.get("preset", "tiny"), n=len(values), mean=mean, std=std,
            baseline_arm=first.get("baseline_arm"),
            abs_lambda_mean=_mean(s.get("abs_lambda_mean") for s in stats),
            rel_delta_mean=_mean(s.get("rel_delta_mean") for s in stats),
            wall_seconds_mean=_mean(r.get("wall_seconds") for r in members))
        base_rows = cells.get((setting, modality, summary.baseline_arm or ""), [])
        if summary.baseline_arm and base_rows:
            _compare_with_baseline(summary, {r["seed"]: metric_of(r) for r in members},  # type: ignore[misc]
                                   {r["seed"]: metric_of(r) for r in base_rows})
        out.append(summary)
    return sorted(out, key=_sort_key)


def on_shared_seeds(a: dict[int, float], b: dict[int, float]) -> tuple[list[float], list[float]]:
    """The values of ``a`` and ``b`` (``{seed: metric}``) at the seeds both have, in seed order;
    all values of each where they share no seed."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return list(a.values()), list(b.values())
    return [a[s] for s in shared], [b[s] for s in shared]


def unpaired_difference(a: dict[int, float], b: dict[int, float]) -> tuple[int, int, float, float]:
    """``(n_a, n_b, mean_a - mean_b, SE)`` on the seeds both have (see :func:`on_shared_seeds`)."""
    a_values, b_values = on_shared_seeds(a, b)
    (a_mean, a_std), (b_mean, b_std) = mean_std(a_values), mean_std(b_values)
    return len(a_values), len(b_values), a_mean - b_mean, se_of_difference(a_std, len(a_values), b_std, len(b_values))


def _compare_with_baseline(summary: ArmSummary, arm: dict[int, float], baseline: dict[int, float]) -> None:
    """Fill the baseline columns, the gain and both tests of ``summary`` on the seeds both arms have.

    Comparing other seed sets would add the seeds' spread to the gain: extra seeds go only to
    uncertain comparisons, and a study in progress finishes seeds at different times. Without a
    shared seed, all runs of both arms are compared (unpaired).
    """
    arm_values, base_values = on_shared_seeds(arm, baseline)
    arm_mean, arm_std = mean_std(arm_values)
    summary.baseline_n = len(base_values)
    summary.baseline_mean, summary.baseline_std = mean_std(base_values)
    summary.gain = arm_mean - summary.baseline_mean
    summary.se_diff = se_of_difference(arm_std, len(arm_values), summary.baseline_std, len(base_values))
    summary.significant = None if math.isnan(summary.se_diff) else abs(summary.gain) > 2 * summary.se_diff
    n, gain, se = paired_difference(arm, baseline)
    summary.paired_n, summary.paired_gain, summary.paired_se = n, gain, se
    summary.paired_significant = None if math.isnan(se) else abs(gain) > 2 * se


def fmt_value(value: Optional[float], digits: int = 2) -> str:
    """``value`` with ``digits`` decimals; "–" for a missing (None or NaN) value."""
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _fmt_g(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.2g}"


def _signed(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.2f}"


TITLES = {
    "main": "Main grid: MAE-pretrained auxiliaries of other modalities, and the std-matched random control",
    "minilm": "Real pretrained MiniLM (text) auxiliary, small preset (width 384)",
    "fixacc": ("Fix acc (the paper's protocol): linear probe of the MAE-pretrained image target, only λ and the "
               "classifier train; gain over fixacc-baseline"),
    "ablation": "Ablations (image target, MAE-pretrained setting)",
    "lambda": "λ study (image target, from scratch): options that let the pathway engage",
    "budget": "Gain versus budget: baseline, pathway and random control at 1x, 4x, 16x the quick training set",
    "plateau": "Plateau check: the baseline trained twice as long",
    "auxplateau": "Auxiliary plateau check: pathway from the MAE pretrained twice as long",
}


def gain_matrix(summaries: Sequence[ArmSummary], setting: str
                ) -> tuple[list[str], list[str], list[list[Optional[ArmSummary]]]]:
    """Auxiliary rows × target columns of one setting, as in the paper's Figure 3.

    Returns:
        ``(row labels, targets, grid)``; a grid cell is the arm's summary (None where the plan
        has no such arm). Rows: each modality's MAE auxiliary, the random controls, MiniLM and
        its control.
    """
    cells = {(s.modality, s.arm): s for s in summaries if s.setting == setting and s.baseline_arm}
    targets = [m for m in MODALITY_ORDER if any(k[0] == m for k in cells)]
    row_arms: list[tuple[str, str]] = [(f"aux-{m}", m) for m in MODALITY_ORDER]
    random_names = sorted({s.arm for s in summaries if s.group == "main" and s.arm.startswith("random-")})
    row_arms += [(name, f"random ({name.removeprefix('random-')} std)") for name in random_names]
    permuted_names = sorted({s.arm for s in summaries if s.group == "main" and s.arm.startswith("permuted-")})
    row_arms += [(name, f"permuted ({name.removeprefix('permuted-')})") for name in permuted_names]
    row_arms += [("small-aux-minilm", "text (MiniLM, small)"), ("small-random-minilm", "random (MiniLM std, small)"),
                 ("small-permuted-minilm", "permuted (MiniLM, small)")]
    labels, grid = [], []
    for arm, label in row_arms:
        if any((t, arm) in cells for t in targets):
            labels.append(label)
            grid.append([cells.get((t, arm)) for t in targets])
    return labels, targets, grid


def gain_matrix_markdown(summaries: Sequence[ArmSummary]) -> str:
    """One gain matrix per setting: gain over the baseline and its 2·SE, bold beyond 2 SE."""
    lines: list[str] = []
    for setting in SETTING_ORDER:
        labels, targets, grid = gain_matrix(summaries, setting)
        if not labels:
            continue
        baselines = {s.modality: s for s in summaries if s.setting == setting and s.arm == "baseline"}
        lines += [f"### Gain over the baseline, {setting} setting: auxiliary × target (points; 2·SE in brackets, "
                  f"– below {MIN_PAIRS} seeds; bold beyond 2 SE)", "", "| auxiliary | " + " | ".join(targets) + " |",
                  "|---|" + "---|" * len(targets),
                  "| *baseline, top-1 % (mean ± std)* | " + " | ".join(
                      f"{fmt_value(baselines[t].mean)} ± {fmt_value(baselines[t].std)}" if t in baselines else ""
                      for t in targets) + " |"]
        for label, row in zip(labels, grid):
            cells = []
            for cell in row:
                if cell is None:
                    cells.append("")
                    continue
                text = f"{_signed(cell.gain)} [{fmt_value(2 * cell.se_diff)}]"
                cells.append(f"**{text}**" if cell.significant else text)
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def markdown_table(summaries: Sequence[ArmSummary], metric: str = "top-1 %") -> str:
    """The aggregate table as Markdown, one section per group."""
    lines: list[str] = []
    groups = [g for g in GROUP_ORDER if any(s.group == g for s in summaries)]
    groups += sorted({s.group for s in summaries} - set(groups))
    for group in groups:
        lines += [f"### {TITLES.get(group, group)}", "",
                  f"| setting | target | arm | n | {metric} (mean ± std) | baseline | gain | 2·SE | > 2 SE | "
                  "paired 2·SE | > 2 SE paired | mean abs λ | ‖λW′‖/‖W‖ | s/run |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in summaries:
            if s.group != group:
                continue
            base = f"{fmt_value(s.baseline_mean)} ± {fmt_value(s.baseline_std)}" if s.baseline_arm else "—"
            lines.append(
                f"| {s.setting} | {s.modality} | {s.arm} | {s.n} | {fmt_value(s.mean)} ± {fmt_value(s.std)} | {base} | "
                f"{_signed(s.gain)} | {fmt_value(2 * s.se_diff)} | {s.verdict} | {fmt_value(2 * s.paired_se)} | "
                f"{s.paired_verdict} | {_fmt_g(s.abs_lambda_mean)} | "
                f"{_fmt_g(s.rel_delta_mean)} | {fmt_value(s.wall_seconds_mean, 0)} |")
        lines.append("")
    return "\n".join(lines)


CSV_FIELDS = [f for f in ArmSummary.__dataclass_fields__] + ["verdict", "paired_verdict"]


def csv_table(summaries: Sequence[ArmSummary]) -> str:
    """The aggregate table as CSV (numbers unrounded, empty for undefined)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for s in summaries:
        record = asdict(s)
        record["verdict"] = s.verdict
        record["paired_verdict"] = s.paired_verdict
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()})
    return buffer.getvalue()


def write_tables(summaries: Sequence[ArmSummary], folder: Path, extra_markdown: str = "") -> list[Path]:
    """Write ``summary.md`` (gain matrices, ``extra_markdown``, the tables) and ``summary.csv`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    md, csv_path = folder / "summary.md", folder / "summary.csv"
    extra = extra_markdown + "\n" if extra_markdown else ""
    md.write_text(gain_matrix_markdown(summaries) + "\n" + extra + markdown_table(summaries))
    csv_path.write_text(csv_table(summaries))
    return [md, csv_path]
