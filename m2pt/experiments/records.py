"""One results row per finished run: identity, metrics, final λ, how much the pathway changes W, and
the run's history (test accuracy per epoch, λ over training), so that tables and figures can be
made from ``results.jsonl`` alone once the run folders are gone."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Optional

from .plan import RunSpec

RESULTS_FILE = "results.jsonl"

#: λ trajectories kept in a row: at most this many step records, evenly spread, the last one included.
LAMBDA_HISTORY_POINTS = 32
#: Significant digits of the numbers kept in a row's history.
HISTORY_DIGITS = 4


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


def file_digest(path: str | Path) -> str:
    """First 16 hex digits of a file's SHA-256: tells apart two auxiliaries made by the same recipe
    (a pretraining done again on another machine need not give the same bits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def make_row(run: RunSpec, run_folder: Path, final: dict[str, Any], wall_seconds: float,
             aux_path: Optional[str], pretrained_path: Optional[str] = None) -> dict[str, Any]:
    """The results row of a finished run (JSON-serialisable).

    Args:
        run: The run.
        run_folder: Its folder (``metrics.jsonl``, ``pathways.safetensors``).
        final: Its final metrics.
        wall_seconds: How long it took (a resumed run: its last part plus the epochs before it;
            NaN when it was found finished).
        aux_path: The auxiliary file it used, if any.
        pretrained_path: The pretrained file that auxiliary comes from (for a control, the
            encoder it was drawn from; for a pretrained auxiliary, ``aux_path``).
    """
    metrics = {k: final[k] for k in ("top1", "top5", "mAP", "test_loss", "train_loss", "step",
                                     "merge_max_abs_diff", "merge_same_predictions") if k in final}
    return {
        "run_id": run.run_id, "fingerprint": run.fingerprint(), "arm": run.arm.name, "group": run.arm.group,
        "baseline_arm": run.arm.baseline, "modality": run.modality, "setting": run.setting, "seed": run.seed,
        "preset": run.preset, "aux": run.arm.aux, "aux_path": aux_path, "init": run.init_source,
        "aux_sha256": file_digest(aux_path) if aux_path else None,
        "pretrained_sha256": file_digest(pretrained_path) if pretrained_path else None,
        "pathway": run.arm.pathway, "metrics": metrics, "pathway_stats": pathway_stats(run_folder),
        "history": run_history(run_folder), "wall_seconds": round(wall_seconds, 2), "folder": str(run_folder),
    }


def _round(value: float) -> float:
    return float(f"{value:.{HISTORY_DIGITS}g}")


def _read_records(run_folder: Path) -> list[dict[str, Any]]:
    path = run_folder / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _epoch_points(records: list[dict[str, Any]]) -> tuple[Optional[str], list[tuple[float, float, float]]]:
    """``(metric, [(epoch, metric value, train loss), ...])`` of a run's epoch records."""
    metric, points = None, []
    for record in records:
        key = "top1" if "top1" in record else ("mAP" if "mAP" in record else None)
        if key and "train_loss" in record:
            metric = key
            points.append((float(record["epoch"]), float(record[key]), float(record["train_loss"])))
    return metric, points


def _lambda_points(records: list[dict[str, Any]]) -> list[tuple[int, dict[str, float]]]:
    """λ at every logged step and at the end of every epoch (the last record of a step wins: a resumed
    run logs some steps twice)."""
    by_step = {int(r["step"]): r["scales"] for r in records if "step" in r and r.get("scales")}
    return sorted(by_step.items())


def run_history(run_folder: Path) -> dict[str, Any]:
    """A run's history, small enough for its results row.

    Returns:
        ``{}`` without ``metrics.jsonl``; else ``metric`` (``top1`` or ``mAP``), ``epochs``
        (``[epoch, metric value, train loss]`` per evaluated epoch) and, for a run with pathways,
        ``lambda``: ``steps`` and ``layers`` (``{layer: [λ at each step]}``), at most
        :data:`LAMBDA_HISTORY_POINTS` steps evenly spread over training, the last one included.
    """
    records = _read_records(run_folder)
    if not records:
        return {}
    metric, epochs = _epoch_points(records)
    history: dict[str, Any] = {"metric": metric, "epochs": [[_round(v) for v in point] for point in epochs]}
    trajectory = _lambda_points(records)
    if trajectory:
        stride = max(1, -(-len(trajectory) // LAMBDA_HISTORY_POINTS))
        kept = trajectory[::-1][::stride][::-1]  # counted back from the end, so the last step stays
        history["lambda"] = {"steps": [step for step, _ in kept],
                             "layers": {layer: [_round(scales.get(layer, math.nan)) for _, scales in kept]
                                        for layer in kept[-1][1]}}
    return history


def epoch_curve(row: dict[str, Any]) -> list[tuple[float, float]]:
    """``[(epoch, test accuracy or mAP), ...]`` of a results row: its history, else its run folder."""
    history = row.get("history")
    if history and history.get("epochs"):
        return [(epoch, value) for epoch, value, _ in history["epochs"]]
    if row.get("folder"):
        return [(epoch, value) for epoch, value, _ in _epoch_points(_read_records(Path(row["folder"])))[1]]
    return []


def lambda_history(row: dict[str, Any]) -> list[tuple[int, dict[str, float]]]:
    """``[(step, {layer: λ}), ...]`` of a results row: its history, else its run folder's records."""
    history = row.get("history")
    if history and history.get("lambda"):
        steps, layers = history["lambda"]["steps"], history["lambda"]["layers"]
        return [(step, {layer: values[i] for layer, values in layers.items()}) for i, step in enumerate(steps)]
    if row.get("folder"):
        return _lambda_points(_read_records(Path(row["folder"])))
    return []


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
