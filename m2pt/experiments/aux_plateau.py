"""Is an auxiliary at its plateau? Its MAE pretrained twice as long, and what that does to a target.

The auxiliary's plateau check mirrors the target's (:mod:`m2pt.experiments.convergence`): the
MAE of ``<m>`` is also pretrained for twice the epochs (source ``mae-long:<m>``) and each lead
target trains with a pathway from it (arm ``aux-<m>-long``). The auxiliary is at its plateau for
that target when the target's gain moves by less than 1 point (paired by seed), whatever the
reconstruction loss still does; the two final losses are reported beside it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from .aggregate import MIN_PAIRS, ArmSummary, fmt_value, metrics_by_seed, paired_difference, unpaired_difference
from .convergence import PLATEAU_POINTS, plateau_verdict

LONG_AUX_ARM = re.compile(r"^aux-(?P<aux>[a-z]+)-long$")


@dataclass
class AuxPlateauCheck:
    """The gain of ``aux-<m>-long`` minus the gain of ``aux-<m>`` on one (setting, target).

    Attributes:
        aux: The auxiliary modality ``<m>``.
        gain: Gain over the baseline with the MAE as planned (points).
        gain_long: Gain with the MAE pretrained twice as long.
        difference: ``gain_long - gain``, paired by seed where 3+ seeds are shared.
        se: Its standard error (``nan`` with too few seeds for one).
        n: Seeds behind ``difference`` (pairs, or the long arm's runs when unpaired).
        loss, loss_long: Final reconstruction losses of the two pretrainings (``nan`` if unknown).
    """

    setting: str
    modality: str
    aux: str
    gain: float
    gain_long: float
    difference: float
    se: float
    n: int
    loss: float = math.nan
    loss_long: float = math.nan

    @property
    def verdict(self) -> str:
        """``yes``: the gain moves by less than 1 point by more than 2·SE; ``no``: by more than 1 point
        by more than 2·SE; else ``undecided`` (:func:`~m2pt.experiments.convergence.plateau_verdict`)."""
        return plateau_verdict(abs(self.difference), self.se, self.n)


def aux_plateau_checks(summaries: Sequence[ArmSummary], rows: Sequence[dict[str, Any]],
                       curves: dict[str, list[tuple[float, float]]]) -> list[AuxPlateauCheck]:
    """One check per (setting, target, auxiliary) with both ``aux-<m>`` and ``aux-<m>-long`` finished.

    Args:
        summaries: Per-arm summaries (:func:`~m2pt.experiments.aggregate.summarize`).
        rows: The rows behind them (per-seed results).
        curves: Pretraining loss curves by folder name (``mae-point``, ``mae-long-point``).
    """
    by_arm = {(s.setting, s.modality, s.arm): s for s in summaries}
    seeds = metrics_by_seed(rows)
    out = []
    for (setting, modality, arm), long in by_arm.items():
        match = LONG_AUX_ARM.match(arm)
        if not match:
            continue
        aux = match["aux"]
        planned = by_arm.get((setting, modality, f"aux-{aux}"))
        if planned is None or math.isnan(long.gain) or math.isnan(planned.gain):
            continue
        long_seeds, planned_seeds = seeds[(setting, modality, arm)], seeds[(setting, modality, planned.arm)]
        n, difference, se = paired_difference(long_seeds, planned_seeds)
        if n < MIN_PAIRS:
            n, _, difference, se = unpaired_difference(long_seeds, planned_seeds)
        out.append(AuxPlateauCheck(setting, modality, aux, planned.gain, long.gain, difference, se, n,
                                   _final(curves.get(f"mae-{aux}")), _final(curves.get(f"mae-long-{aux}"))))
    return sorted(out, key=lambda c: (c.setting, c.modality, c.aux))


def _final(curve: list[tuple[float, float]] | None) -> float:
    return curve[-1][1] if curve else math.nan


def aux_plateau_markdown(checks: Sequence[AuxPlateauCheck]) -> str:
    """The checks as a Markdown section ('' without any)."""
    if not checks:
        return ""
    lines = ["### Auxiliary plateau check: pathway from the MAE pretrained twice as long", "",
             f"Reached when the target's gain moves by less than {PLATEAU_POINTS:g} point (yes: by more than "
             "2·SE less; no: by more than 2·SE more; undecided: within 2·SE). Difference: the gain with the "
             "longer pretraining minus the gain with the planned one, paired by seed where 3+ seeds are shared.",
             "", "| setting | target | auxiliary | final MAE loss (1x, 2x epochs) | gain, 1x MAE | gain, 2x MAE | "
             "difference | 2·SE | n | plateau |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in checks:
        losses = f"{fmt_value(c.loss, 4)}, {fmt_value(c.loss_long, 4)}"
        lines.append(f"| {c.setting} | {c.modality} | {c.aux} | {losses} | {c.gain:+.2f} | {c.gain_long:+.2f} | "
                     f"{c.difference:+.2f} | {fmt_value(2 * c.se)} | {c.n} | {c.verdict} |")
    lines.append("")
    return "\n".join(lines)
