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

import errno
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

from m2pt.io import NoSpaceError, atomic_write_json, atomic_write_text

CONFIG = "config.json"
LOG = "train.log"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
FINAL = "final_metrics.json"
DATA_LOGGER = "m2pt.data"


class RunFolderError(RuntimeError):
    """The output folder cannot be used (finished run, unwritable, missing checkpoint to resume)."""


def prepare_run_folder(path: str | os.PathLike, resume: bool, overwrite: bool) -> Path:
    """Create or check the output folder before any work starts (hold its lock first: see ``run_lock``).

    Leftover temporary files of interrupted atomic writes are removed.

    Raises:
        RunFolderError: the folder holds a finished run (without ``resume``/``overwrite``), has
            no checkpoint to resume from, cannot be written, or both ``resume`` and
            ``overwrite`` are given.
    """
    folder = Path(path).expanduser()
    if resume and overwrite:
        raise RunFolderError(
            "--resume and --overwrite together: --resume continues the run in the folder, --overwrite deletes it. "
            "Pass only one.")
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
    remove_stale_temporaries(folder)
    return folder


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the ``.<name>.*.tmp`` files that an atomic write killed mid-way left behind.

    Only called with the folder's lock held, so no other process is writing them.
    """
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


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
    for handler in logger.handlers:  # skipped-file warnings of the data loaders go to train.log too
        logging.getLogger(DATA_LOGGER).addHandler(handler)
    return logger


def close_logger(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logging.getLogger(DATA_LOGGER).removeHandler(handler)
        logger.removeHandler(handler)
        handler.close()


def skipped_files(datasets: dict[str, Any]) -> dict[str, Any]:
    """``skipped_files_<split>`` counts (and the paths) of unreadable items the loaders skipped.

    Counts what this process's loaders saw (DataLoader workers keep their own trackers; their
    warnings still reach ``train.log``).
    """
    out: dict[str, Any] = {}
    for split, dataset in datasets.items():
        tracker = getattr(dataset, "tracker", None)
        paths = list(tracker.bad_paths) if tracker is not None else []
        out[f"skipped_files_{split}"] = len(paths)
        if paths:
            out[f"skipped_paths_{split}"] = paths[:100]
    return out


class MetricsWriter:
    """Appends JSON records to ``metrics.jsonl``; on resume, drops records past the checkpoint.

    A last line cut short (the process killed or the disk full mid-write) is dropped on
    reading; a damaged line elsewhere is an error that names the line.
    """

    def __init__(self, folder: Path, resume_step: Optional[int] = None) -> None:
        self.path = folder / METRICS
        if resume_step is not None and self.path.is_file():
            kept = [json.dumps(record) for record in self.read() if record.get("step", 0) <= resume_step]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoSpaceError(exc.errno, f"no space left on {self.path.parent} while writing {METRICS}; "
                                              "free some space, then resume the run") from exc
            raise

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if number == len(lines):  # an interrupted append
                    break
                raise RunFolderError(f"{self.path}:{number} is not a JSON record ({exc}); the file is damaged") from exc
        return records


def write_config(folder: Path, config: dict[str, Any]) -> None:
    atomic_write_json(folder / CONFIG, config)


def write_final(folder: Path, metrics: dict[str, Any]) -> None:
    atomic_write_json(folder / FINAL, metrics)
