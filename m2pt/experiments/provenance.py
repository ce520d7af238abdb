"""Which pretrained file each run's auxiliary came from, flagged where one target mixes several.

The arms of a target that share a pretrained auxiliary (its pathway arm and the controls drawn
from it) should use one file for every seed. A study that moved to another machine pretrains
its auxiliaries again, by the same recipe and seed but not always to the same bits, so runs
finished after the move can use another file than runs before it. Rows keep the digest of the
pretrained file (``pretrained_sha256``: for a control, the encoder it was drawn from) and this
section says where a target's runs used more than one.
"""

from __future__ import annotations

from typing import Any, Sequence

from .random_aux import CONTROL_KINDS

NOT_RECORDED = "not recorded"


def pretrained_source(aux: str) -> str:
    """The pretrained source of an auxiliary (``random:mae:point`` → ``mae:point``)."""
    kind, _, inner = aux.partition(":")
    return pretrained_source(inner) if kind in CONTROL_KINDS else aux


def mixed_auxiliaries(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, dict[str, list[int]]]]:
    """``{(setting, target, source): {file digest: {arm: [seeds]}}}`` where a target's runs used several files of one source.

    A row without a digest (made before digests were kept) counts as :data:`NOT_RECORDED`.
    """
    by_source: dict[tuple[str, str, str], dict[str, dict[str, list[int]]]] = {}
    for row in rows:
        if not row.get("aux"):
            continue
        files = by_source.setdefault((row["setting"], row["modality"], pretrained_source(row["aux"])), {})
        arms = files.setdefault(row.get("pretrained_sha256") or NOT_RECORDED, {})
        arms.setdefault(row["arm"], []).append(row["seed"])
    return {key: {digest: {arm: sorted(seeds) for arm, seeds in sorted(arms.items())} for digest, arms in files.items()}
            for key, files in sorted(by_source.items()) if len(files) > 1}


def provenance_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown section listing the targets whose runs used different files of one auxiliary ('' when none)."""
    mixed = mixed_auxiliaries(rows)
    if not mixed:
        return ""
    lines = ["### Runs whose auxiliary came from different pretrained files", "",
             "Same recipe and seed, pretrained again (e.g. on another machine); a control counts with the "
             "encoder it was drawn from; digests are SHA-256 prefixes.", "",
             "| setting | target | auxiliary | file: arm (seeds) |", "|---|---|---|---|"]
    for (setting, modality, source), files in mixed.items():
        listed = "; ".join(f"{digest}: " + ", ".join(f"{arm} ({', '.join(map(str, seeds))})"
                                                      for arm, seeds in arms.items())
                           for digest, arms in files.items())
        lines.append(f"| {setting} | {modality} | {source} | {listed} |")
    lines.append("")
    return "\n".join(lines)
