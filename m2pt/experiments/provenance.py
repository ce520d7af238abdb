"""Which auxiliary file each run of an arm used, flagged where one arm mixes several.

An arm's seeds should share one auxiliary (its controls are drawn from it per seed). A study
that moved to another machine pretrains its auxiliaries again, by the same recipe and seed but
not always to the same bits, so later seeds can use another file than earlier ones; rows keep
the file's digest (``aux_sha256``) and this section says where that happened.
"""

from __future__ import annotations

from typing import Any, Sequence

NOT_RECORDED = "not recorded"


def mixed_auxiliaries(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, list[int]]]:
    """``{(setting, target, arm): {auxiliary digest: [seeds]}}`` of the arms whose runs used more than one file.

    A row without a digest (made before digests were kept) counts as :data:`NOT_RECORDED`.
    """
    by_arm: dict[tuple[str, str, str], dict[str, list[int]]] = {}
    for row in rows:
        if not row.get("aux"):
            continue
        files = by_arm.setdefault((row["setting"], row["modality"], row["arm"]), {})
        files.setdefault(row.get("aux_sha256") or NOT_RECORDED, []).append(row["seed"])
    return {key: {digest: sorted(seeds) for digest, seeds in files.items()}
            for key, files in sorted(by_arm.items()) if len(files) > 1}


def provenance_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown section listing the arms that mix auxiliary files ('' when none does)."""
    mixed = mixed_auxiliaries(rows)
    if not mixed:
        return ""
    lines = ["### Arms whose seeds used different auxiliary files", "",
             "Same recipe and seed, pretrained again (e.g. on another machine); digests are SHA-256 prefixes.", "",
             "| setting | target | arm | auxiliary file: seeds |", "|---|---|---|---|"]
    for (setting, modality, arm), files in mixed.items():
        listed = "; ".join(f"{digest}: {', '.join(map(str, seeds))}" for digest, seeds in files.items())
        lines.append(f"| {setting} | {modality} | {arm} | {listed} |")
    lines.append("")
    return "\n".join(lines)
