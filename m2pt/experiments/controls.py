"""The pretrained auxiliary against its controls: does knowledge beat weights with its statistics?

A gain over the baseline says that a pathway helps; only the difference to the random control
(same per-matrix standard deviation) and to the permuted control (same values and spectrum,
alignment with the target's features destroyed) says that what the auxiliary learned helps.
Each difference is taken on the seeds both arms have and reported unpaired and paired by seed
(the arms share the target's initialisation and data order), with the tests of
:mod:`m2pt.experiments.aggregate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .aggregate import (MIN_PAIRS, ArmSummary, fmt_value, metrics_by_seed, paired_difference, table_order,
                        unpaired_difference)

CONTROL_KINDS = ("random", "permuted")


@dataclass
class ControlComparison:
    """An arm with a pretrained auxiliary (``aux-point``, ``small-aux-minilm``, ``fixacc-aux-point``,
    ``aux-point-b4x``) minus the same arm with a control (``random-point``, ``small-permuted-minilm``, ...)."""

    group: str
    setting: str
    modality: str
    arm: str
    control: str
    n_aux: int
    n_control: int
    difference: float
    se: float
    paired_n: int
    paired_difference: float
    paired_se: float

    @property
    def verdict(self) -> str:
        """``yes``/``no``/``n/a``: the paired difference beyond 2 SE (unpaired where pairs are too few)."""
        paired = self.paired_n >= MIN_PAIRS
        difference, se = (self.paired_difference, self.paired_se) if paired else (self.difference, self.se)
        return "n/a" if math.isnan(se) else ("yes" if abs(difference) > 2 * se else "no")


def control_comparisons(summaries: Sequence[ArmSummary], rows: Sequence[dict[str, Any]]) -> list[ControlComparison]:
    """Every arm with a pretrained auxiliary against each control arm of the same source and budget."""
    by_arm = {(s.setting, s.modality, s.arm): s for s in summaries}
    seeds = metrics_by_seed(rows)
    out = []
    for (setting, modality, arm), aux in by_arm.items():
        if "aux-" not in arm:
            continue
        for kind in CONTROL_KINDS:
            control = by_arm.get((setting, modality, arm.replace("aux-", f"{kind}-", 1)))
            if control is None:
                continue
            aux_seeds, control_seeds = seeds[(setting, modality, arm)], seeds[(setting, modality, control.arm)]
            n_aux, n_control, difference, se = unpaired_difference(aux_seeds, control_seeds)
            n, paired, paired_se = paired_difference(aux_seeds, control_seeds)
            out.append(ControlComparison(aux.group, setting, modality, arm, control.arm, n_aux, n_control, difference,
                                         se, n, paired, paired_se))
    return sorted(out, key=lambda c: (*table_order(c.group, c.setting, c.modality), c.arm, c.control))


def controls_markdown(comparisons: Sequence[ControlComparison]) -> str:
    """The comparisons as a Markdown section ('' when the plan has no controls)."""
    if not comparisons:
        return ""
    lines = ["### Pretrained auxiliary minus its controls (points; the question the controls answer)", "",
             "Positive: the pretrained W′ beats weights of its statistics. Paired by seed where "
             f"{MIN_PAIRS}+ seeds are shared.", "",
             "| group | setting | target | arm | control | n (arm, control) | difference | 2·SE | paired difference | "
             "paired 2·SE | beyond 2 SE |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        lines.append(
            f"| {c.group} | {c.setting} | {c.modality} | {c.arm} | {c.control} | {c.n_aux}, {c.n_control} | "
            f"{c.difference:+.2f} | {fmt_value(2 * c.se)} | {c.paired_difference:+.2f} | {fmt_value(2 * c.paired_se)} | "
            f"{c.verdict} |")
    return "\n".join(lines) + "\n"
