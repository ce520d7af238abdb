"""One results row per finished run: identity, metrics, final λ and how much the pathway changes W."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator, Optional

from .plan import RunSpec

RESULTS_FILE = "results.jsonl"


def pathway_stats(run_folder: Path) -> dict[str, Any]:
    """Final |λ| and ``‖λW′‖/‖W‖`` per layer, read back from the run's ``pathways.safetensors``.

    Returns:
        ``{}`` for a run without pathways; else ``abs_lambda_{mean,min,max}``,
        ``rel_delta_{mean,max}`` (over layers) and ``layers`` (per layer: ``lambda``,
        ``abs_lambda``, ``rel_delta``).
    """
    path = run_folder / "pathways.safetensors"
    if not path.is_file():
        return {}
    from m2pt.models import create_model_from_args
    from m2pt.pathway import load_pathways, pathway_summary

    config = json.loads((run_folder / "config.json").read_text())
    model = load_pathways(create_model_from_args(config["model_args"]), path)
    layers = pathway_summary(model).layers
    abs_lambda = [p.scale_abs_mean for p in layers]
    rel = [p.relative_delta for p in layers]
    return {
        "abs_lambda_mean": sum(abs_lambda) / len(abs_lambda), "abs_lambda_min": min(abs_lambda),
        "abs_lambda_max": max(abs_lambda), "rel_delta_mean": sum(rel) / len(rel), "rel_delta_max": max(rel),
        "layers": {p.layer: {"lambda": p.scale_mean, "abs_lambda": p.scale_abs_mean, "rel_delta": p.relative_delta}
                   for p in layers},
    }


def make_row(run: RunSpec, run_folder: Path, final: dict[str, Any], wall_seconds: float,
             aux_path: Optional[str]) -> dict[str, Any]:
    """The results row of a finished run (JSON-serialisable)."""
    metrics = {k: final[k] for k in ("top1", "top5", "mAP", "test_loss", "train_loss", "step",
                                     "merge_max_abs_diff", "merge_same_predictions") if k in final}
    return {
        "run_id": run.run_id, "fingerprint": run.fingerprint(), "arm": run.arm.name, "group": run.arm.group,
        "baseline_arm": run.arm.baseline, "modality": run.modality, "setting": run.setting, "seed": run.seed,
        "preset": run.preset, "aux": run.arm.aux, "aux_path": aux_path, "init": run.init_source,
        "pathway": run.arm.pathway, "metrics": metrics, "pathway_stats": pathway_stats(run_folder),
        "wall_seconds": round(wall_seconds, 2), "folder": str(run_folder),
    }


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``results.jsonl`` (a torn last line from a crash is ignored)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one row and flush it to disk (a crash afterwards keeps it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row, default=_json_default) + "\n")
        f.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def latest_rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last row of each ``run_id`` (a re-run replaces an older row)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row["run_id"]] = row
    return latest


def iter_lambda_history(run_folder: Path) -> Iterator[tuple[int, dict[str, float]]]:
    """``(step, {layer: λ})`` from a run's ``metrics.jsonl`` (step records only)."""
    path = run_folder / "metrics.jsonl"
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if "loss" in record and record.get("scales"):
                yield int(record["step"]), record["scales"]
