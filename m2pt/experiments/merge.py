"""Bring the finished runs of another copy of a study into this one.

A study can move to another machine, or run in parts on several (``--only``), as long as the
results come together: :func:`import_results` appends the rows of another folder's
``results.jsonl`` whose runs this folder has no row for, and the pretraining loss curves it
lacks. The runner then skips those runs (by fingerprint) and the tables and figures include
them (each row carries its run's history).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .convergence import PRETRAIN_CURVES_FILE, read_pretrain_curves, write_pretrain_curves
from .records import RESULTS_FILE, append_row, latest_rows, read_rows


class MissingResults(FileNotFoundError):
    """The folder to import from has no ``results.jsonl``."""


@dataclass
class ImportReport:
    """What :func:`import_results` did.

    Attributes:
        rows_added: Rows appended (runs this folder had no row for).
        rows_present: Rows left out because this folder already has a row for their run
            (its own result stands, whatever the fingerprints).
        curves_added: Pretraining curves added.
    """

    rows_added: int
    rows_present: int
    curves_added: int


def import_results(source: Path, output: Path) -> ImportReport:
    """Append the finished runs and pretraining curves of ``source`` that ``output`` lacks.

    Args:
        source: Another study folder (with ``results.jsonl``), or that ``results.jsonl`` itself.
        output: This study's folder (made if missing).

    Raises:
        MissingResults: ``source`` has no ``results.jsonl``.
    """
    source = Path(source)
    folder, rows_file = (source.parent, source) if source.is_file() else (source, source / RESULTS_FILE)
    if not rows_file.is_file():
        raise MissingResults(f"{rows_file} does not exist: --import-results takes a study folder with a "
                                f"{RESULTS_FILE} (e.g. results/converged) or that file itself")
    output.mkdir(parents=True, exist_ok=True)
    destination = output / RESULTS_FILE
    present = set(latest_rows(read_rows(destination)))
    added = kept = 0
    for run_id, row in latest_rows(read_rows(rows_file)).items():
        if run_id in present:
            kept += 1
            continue
        append_row(destination, row)
        added += 1
    return ImportReport(added, kept, _import_curves(folder / PRETRAIN_CURVES_FILE, output / PRETRAIN_CURVES_FILE))


def _import_curves(source: Path, destination: Path) -> int:
    if not source.is_file() or source.resolve() == destination.resolve():
        return 0
    incoming, curves = read_pretrain_curves(source), read_pretrain_curves(destination)
    new = {name: entry for name, entry in incoming.items() if name not in curves}
    if new:
        write_pretrain_curves(destination, {**curves, **new})
    return len(new)
