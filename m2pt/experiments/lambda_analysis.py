"""What λ does at the end of training: sign agreement across seeds and arms, and ‖λW′‖/‖W‖.

If a pathway carries knowledge, its λ should settle on the same sign, layer by layer, whatever
the seed, and differently from a control's. Both agreements are fractions of pairs with equal
signs; 0.5 is what independent random signs give.

* **across seeds** (one arm, one layer): the fraction of seed pairs ``(i, j)``, ``i < j``, whose
  final λ have the same sign;
* **pathway vs control** (one layer): the fraction of seeds at which the pathway's final λ and
  the control's (same target, same seed) have the same sign.

Final λ and ``‖λW′‖/‖W‖`` come from the rows' ``pathway_stats["layers"]`` (mean of λ over its
entries, for per-channel λ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, TypeVar

from .aggregate import fmt_value

V = TypeVar("V")

#: Prefixes of control arms (their pathway arm has the same name after ``aux-``).
CONTROL_PREFIXES = ("random-", "permuted-")


def final_lambdas(row: dict[str, Any]) -> dict[str, float]:
    """``{layer: final λ}`` of a run's results row ({} without pathways)."""
    layers = (row.get("pathway_stats") or {}).get("layers") or {}
    return {name: float(stats["lambda"]) for name, stats in layers.items()}


def relative_deltas(row: dict[str, Any]) -> dict[str, float]:
    """``{layer: ‖λW′‖/‖W‖}`` at the end of a run ({} without pathways)."""
    layers = (row.get("pathway_stats") or {}).get("layers") or {}
    return {name: float(stats["rel_delta"]) for name, stats in layers.items()}


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def sign_agreement_across_seeds(by_seed: dict[int, dict[str, float]]) -> dict[str, float]:
    """Per layer, the fraction of seed pairs whose final λ have the same sign (``nan`` below 2 seeds)."""
    layers = sorted({layer for lambdas in by_seed.values() for layer in lambdas}, key=layer_order)
    out = {}
    for layer in layers:
        signs = [_sign(lambdas[layer]) for lambdas in by_seed.values() if layer in lambdas]
        pairs = list(combinations(signs, 2))
        out[layer] = sum(a == b for a, b in pairs) / len(pairs) if pairs else math.nan
    return out


def sign_agreement_between(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]]) -> dict[str, float]:
    """Per layer, the fraction of shared seeds at which two arms' final λ have the same sign."""
    seeds = sorted(set(a) & set(b))
    layers = sorted({layer for s in seeds for layer in a[s]} & {layer for s in seeds for layer in b[s]},
                    key=layer_order)
    out = {}
    for layer in layers:
        pairs = [(a[s][layer], b[s][layer]) for s in seeds if layer in a[s] and layer in b[s]]
        out[layer] = sum(_sign(x) == _sign(y) for x, y in pairs) / len(pairs) if pairs else math.nan
    return out


def layer_order(name: str) -> tuple:
    """Sort key of layer names in block order (``blocks.2`` before ``blocks.10``)."""
    parts = name.split(".")
    return tuple(int(p) if p.isdigit() else 0 for p in parts), name


def mean_of_numbers(values: Iterable[float]) -> float:
    """Mean of the values that are not ``nan`` (``nan`` when none is)."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


@dataclass
class LambdaSummary:
    """The λ study of one pathway arm (setting, target, arm) over its seeds.

    Attributes:
        seeds: Seeds with final λ.
        across_seeds: Per layer, sign agreement across seeds (:func:`sign_agreement_across_seeds`).
        vs_controls: Per control arm, per layer, sign agreement with it (pathway arms only).
        rel_delta: Per layer, ``‖λW′‖/‖W‖`` at the end, mean over seeds.
        abs_lambda: Per layer, final ``|λ|``, mean over seeds.
    """

    setting: str
    modality: str
    arm: str
    group: str
    seeds: list[int]
    across_seeds: dict[str, float]
    vs_controls: dict[str, dict[str, float]] = field(default_factory=dict)
    rel_delta: dict[str, float] = field(default_factory=dict)
    abs_lambda: dict[str, float] = field(default_factory=dict)

    @property
    def across_seeds_mean(self) -> float:
        return mean_of_numbers(self.across_seeds.values())

    def vs_control_mean(self, control: str) -> float:
        return mean_of_numbers(self.vs_controls.get(control, {}).values())

    @property
    def rel_delta_mean(self) -> float:
        return mean_of_numbers(self.rel_delta.values())


def control_of(arm: str) -> Optional[tuple[str, str]]:
    """``("random", "aux-point")`` for ``"random-point"``: a control arm's kind and pathway arm.

    A control is named as its pathway arm with ``aux-`` replaced by its kind, after any group
    prefix: ``small-permuted-minilm`` controls ``small-aux-minilm``, ``fixacc-random-point``
    controls ``fixacc-aux-point`` (as :func:`m2pt.experiments.controls.control_comparisons` pairs them).
    """
    for prefix in CONTROL_PREFIXES:
        head, found, rest = arm.partition(prefix)
        if found and (not head or head.endswith("-")) and "aux-" not in head:
            return prefix[:-1], f"{head}aux-{rest}"
    return None


def controls_in(cells: Mapping[tuple[str, str, str], V], setting: str, modality: str,
                arm: str) -> Iterator[tuple[str, V]]:
    """``(control arm, its value)`` for every control of ``arm`` among cells keyed by (setting, target, arm)."""
    for (c_setting, c_modality, c_arm), value in cells.items():
        control = control_of(c_arm)
        if (c_setting, c_modality) == (setting, modality) and control and control[1] == arm:
            yield c_arm, value


def lambda_summaries(rows: Sequence[dict[str, Any]]) -> list[LambdaSummary]:
    """One :class:`LambdaSummary` per (setting, target, arm) with pathways and final λ."""
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("aux") and final_lambdas(row):
            cells.setdefault((row["setting"], row["modality"], row["arm"]), []).append(row)
    by_seed = {key: {r["seed"]: final_lambdas(r) for r in members} for key, members in cells.items()}
    out = []
    for (setting, modality, arm), members in cells.items():
        lambdas = by_seed[(setting, modality, arm)]
        deltas = [relative_deltas(r) for r in members]
        layers = sorted({layer for d in deltas for layer in d}, key=layer_order)
        summary = LambdaSummary(
            setting, modality, arm, members[0].get("group", "main"), sorted(lambdas),
            sign_agreement_across_seeds(lambdas),
            rel_delta={layer: mean_of_numbers(d[layer] for d in deltas if layer in d) for layer in layers},
            abs_lambda={layer: mean_of_numbers(abs(v[layer]) for v in lambdas.values() if layer in v) for layer in layers})
        for c_arm, c_lambdas in controls_in(by_seed, setting, modality, arm):
            summary.vs_controls[c_arm] = sign_agreement_between(lambdas, c_lambdas)
        out.append(summary)
    return sorted(out, key=lambda s: (s.setting, s.modality, control_of(s.arm) is not None, s.arm))


def lambda_markdown(summaries: Sequence[LambdaSummary]) -> str:
    """The λ study as Markdown: one line per arm (chance agreement is 0.50)."""
    if not summaries:
        return ""
    lines = ["### λ at the end of training: sign agreement (0.50 = chance) and ‖λW′‖/‖W‖", "",
             "| setting | target | arm | seeds | sign agreement across seeds (mean; min–max over layers) | "
             "sign agreement with controls | ‖λW′‖/‖W‖ (mean; max over layers) | mean abs λ |",
             "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        values = [v for v in s.across_seeds.values() if not math.isnan(v)]
        spread = (f"{fmt_value(s.across_seeds_mean)}; {fmt_value(min(values))}–{fmt_value(max(values))}"
                  if values else "–")
        controls = ", ".join(f"{c}: {fmt_value(s.vs_control_mean(c))}" for c in sorted(s.vs_controls)) or "–"
        deltas = list(s.rel_delta.values())
        delta = f"{s.rel_delta_mean:.2g}; {max(deltas):.2g}" if deltas else "–"
        lines.append(f"| {s.setting} | {s.modality} | {s.arm} | {len(s.seeds)} | {spread} | {controls} | {delta} | "
                     f"{mean_of_numbers(s.abs_lambda.values()):.2g} |")
    lines.append("")
    return "\n".join(lines)
