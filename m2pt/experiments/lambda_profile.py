"""Where λ engages: the per-layer profile of ‖λW′‖/‖W‖, and whether the pretrained W′ shapes it.

A pathway changes a few layers much more than the rest. If the knowledge in a pretrained W′
decided which, its profile would differ from its controls' (same target and seed, a W′ of the
same statistics without that knowledge) more than from itself on another seed. The profiles are
compared by rank correlation over layers:

* **across seeds** (one arm): mean over seed pairs;
* **with a control**: mean over the seeds both arms have, each pair on the same seed.

A pathway that correlates with its control as much as with itself on another seed has its
profile set by the target and its training, not by what W′ holds.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from statistics import median
from typing import Any, Sequence

from .lambda_analysis import control_of, controls_in, layer_order, mean_of_numbers, relative_deltas

#: Fewer layers than this give no correlation (two points always lie on a line).
MIN_LAYERS = 3


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's correlation of two equally long sequences (``nan`` below 3 values or when one is constant).

    Raises:
        ValueError: The sequences differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"rank_correlation needs sequences of one length, got {len(a)} and {len(b)}")
    if len(a) < MIN_LAYERS:
        return math.nan
    ra, rb = _ranks(a), _ranks(b)
    mean = (len(a) + 1) / 2
    covariance = sum((x - mean) * (y - mean) for x, y in zip(ra, rb))
    spread = math.sqrt(sum((x - mean) ** 2 for x in ra) * sum((y - mean) ** 2 for y in rb))
    return covariance / spread if spread else math.nan


def profile_correlation(a: dict[str, float], b: dict[str, float]) -> float:
    """Rank correlation of two ``{layer: ‖λW′‖/‖W‖}`` profiles over the layers both have."""
    layers = sorted(set(a) & set(b), key=layer_order)
    return rank_correlation([a[k] for k in layers], [b[k] for k in layers])


def correlation_across_seeds(by_seed: dict[int, dict[str, float]]) -> float:
    """Mean profile correlation over the seed pairs of one arm (``nan`` below 2 seeds)."""
    return mean_of_numbers([profile_correlation(by_seed[i], by_seed[j]) for i, j in combinations(sorted(by_seed), 2)])


def correlation_between(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]]) -> tuple[float, int]:
    """Mean profile correlation of two arms over their shared seeds, and how many seeds that is."""
    seeds = sorted(set(a) & set(b))
    return mean_of_numbers([profile_correlation(a[s], b[s]) for s in seeds]), len(seeds)


@dataclass
class LambdaProfile:
    """Where λ engages in one arm (setting, target, arm) over its seeds.

    Attributes:
        seeds: Seeds with final ``‖λW′‖/‖W‖``.
        top_layer: The layer most often the largest ``‖λW′‖/‖W‖`` of a seed (ties: larger mean).
        top_layer_seeds: On how many seeds it is the largest.
        top_value: Its ``‖λW′‖/‖W‖``, mean over seeds.
        median_value: The median layer's ``‖λW′‖/‖W‖`` (per-layer means over seeds).
        across_seeds: Profile correlation across seeds (:func:`correlation_across_seeds`).
        vs_controls: Per control arm, ``(profile correlation on shared seeds, shared seeds)``.
    """

    setting: str
    modality: str
    arm: str
    group: str
    seeds: list[int]
    top_layer: str
    top_layer_seeds: int
    top_value: float
    median_value: float
    across_seeds: float
    vs_controls: dict[str, tuple[float, int]] = field(default_factory=dict)


def _profile(setting: str, modality: str, arm: str, group: str, by_seed: dict[int, dict[str, float]]) -> LambdaProfile:
    layers = sorted({k for deltas in by_seed.values() for k in deltas}, key=layer_order)
    means = {k: mean_of_numbers([d[k] for d in by_seed.values() if k in d]) for k in layers}
    tops = Counter(max(deltas, key=deltas.__getitem__) for deltas in by_seed.values() if deltas)
    top_layer = max(tops, key=lambda k: (tops[k], means[k]))
    return LambdaProfile(setting, modality, arm, group, sorted(by_seed), top_layer, tops[top_layer],
                         means[top_layer], median(means.values()), correlation_across_seeds(by_seed))


def lambda_profiles(rows: Sequence[dict[str, Any]]) -> list[LambdaProfile]:
    """One :class:`LambdaProfile` per (setting, target, arm) whose rows have per-layer ``‖λW′‖/‖W‖``."""
    cells: dict[tuple[str, str, str], dict[int, dict[str, float]]] = {}
    groups: dict[tuple[str, str, str], str] = {}
    for row in rows:
        deltas = relative_deltas(row)
        if row.get("aux") and deltas:
            key = (row["setting"], row["modality"], row["arm"])
            cells.setdefault(key, {})[row["seed"]] = deltas
            groups.setdefault(key, row.get("group", "main"))
    out = []
    for (setting, modality, arm), by_seed in cells.items():
        profile = _profile(setting, modality, arm, groups[(setting, modality, arm)], by_seed)
        for c_arm, c_by_seed in controls_in(cells, setting, modality, arm):
            profile.vs_controls[c_arm] = correlation_between(by_seed, c_by_seed)
        out.append(profile)
    return sorted(out, key=lambda p: (p.setting, p.modality, control_of(p.arm) is not None, p.arm))


def _correlation(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.2f}"


def lambda_profile_markdown(profiles: Sequence[LambdaProfile]) -> str:
    """Where λ engages, as Markdown ('' without any profile)."""
    if not profiles:
        return ""
    lines = ["### Where λ engages: the per-layer profile of ‖λW′‖/‖W‖", "",
             "Rank correlation of the per-layer profiles (1: same layers in the same order). A pathway whose "
             "profile matches its control's as closely as its own on another seed gets it from the target's "
             "training, not from what W′ holds.", "",
             "| setting | target | arm | seeds | largest layer (seeds where largest) | its ‖λW′‖/‖W‖ | "
             "median layer's | correlation across seeds | correlation with controls, same seed (seeds) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in profiles:
        controls = ", ".join(f"{arm}: {_correlation(value)} ({n})" for arm, (value, n) in sorted(p.vs_controls.items()))
        lines.append(f"| {p.setting} | {p.modality} | {p.arm} | {len(p.seeds)} | {p.top_layer} "
                     f"({p.top_layer_seeds} of {len(p.seeds)}) | {p.top_value:.2g} | {p.median_value:.2g} | "
                     f"{_correlation(p.across_seeds)} | {controls or '–'} |")
    lines.append("")
    return "\n".join(lines)
