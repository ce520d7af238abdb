"""The run folder: what a run writes, and the refusal to overwrite a finished run.

Layout::

    config.json          options as resolved
    train.log            the log
    metrics.jsonl        one JSON record per logged step and per epoch
    checkpoint.pt        training state (atomic, every epoch and on SIGINT/SIGTERM)
    final_metrics.json   written last: its presence marks a finished run
    model.safetensors    the merged plain model (+ model.json)
    pathways.safetensors the unmerged pathway model (when pathways were used)
    plots/*.png          loss / accuracy curves, λ per layer
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

from m2pt.io import atomic_write_json

CONFIG = "config.json"
LOG = "train.log"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
FINAL = "final_metrics.json"


class RunFolderError(RuntimeError):
    """The output folder cannot be used (finished run, unwritable, missing checkpoint to resume)."""


def prepare_run_folder(path: str | os.PathLike, resume: bool, overwrite: bool) -> Path:
    """Create or check the output folder before any work starts.

    Raises:
        RunFolderError: the folder holds a finished run (without ``resume``/``overwrite``), has
            no checkpoint to resume from, or cannot be written.
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"output {folder} exists and is not a folder")
    finished = (folder / FINAL).is_file()
    if overwrite and folder.exists():
        for name in (CONFIG, LOG, METRICS, CHECKPOINT, FINAL, "model.safetensors", "model.json",
                     "pathways.safetensors", "encoder.safetensors"):
            (folder / name).unlink(missing_ok=True)
        shutil.rmtree(folder / "plots", ignore_errors=True)
    elif resume:
        if not (folder / CHECKPOINT).is_file() and not finished:
            raise RunFolderError(f"--resume: {folder} has no {CHECKPOINT} to resume from")
    elif finished:
        raise RunFolderError(
            f"output {folder} already holds a finished run ({FINAL} exists); pass --resume to continue it "
            "or --overwrite to replace it, or choose another --output")
    elif (folder / CHECKPOINT).is_file():
        raise RunFolderError(
            f"output {folder} holds an interrupted run ({CHECKPOINT}); pass --resume to continue it or "
            "--overwrite to start again")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".m2pt-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise RunFolderError(f"output folder {folder} is not writable: {exc}") from exc
    return folder


def make_logger(folder: Optional[Path], quiet: bool, name: str = "m2pt.train") -> logging.Logger:
    """A logger that writes to ``train.log`` in the run folder and (unless quiet) to stderr.

    Records also propagate to ``logging.getLogger("m2pt")`` and the root logger. When the
    application has configured logging there (any handler above this logger), the terminal is
    left to those handlers, so no line is printed twice.
    """
    logger = logging.getLogger(f"{name}.{id(folder)}")
    logger.setLevel(logging.INFO)
    logger.propagate = True
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    if folder is not None:
        file_handler = logging.FileHandler(folder / LOG)
        file_handler.setFormatter(fmt)
        logger.addHandler(file_handler)
    if not quiet and not logging.getLogger(name).hasHandlers():
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(fmt)
        logger.addHandler(stream)
    return logger


def close_logger(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


class MetricsWriter:
    """Appends JSON records to ``metrics.jsonl``; on resume, drops records past the checkpoint."""

    def __init__(self, folder: Path, resume_step: Optional[int] = None) -> None:
        self.path = folder / METRICS
        if resume_step is not None and self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def write_config(folder: Path, config: dict[str, Any]) -> None:
    atomic_write_json(folder / CONFIG, config)


def write_final(folder: Path, metrics: dict[str, Any]) -> None:
    atomic_write_json(folder / FINAL, metrics)
