"""Merge a saved pathway model (``pathways.safetensors``) into a plain model file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from m2pt.checkpoints import save_model
from m2pt.pathway import load_pathways, merge_pathways
from m2pt.pathway.state import pathway_file_model_args


def _check_output(pathways: Path, output: Path, model_args_file: Optional[str | Path], overwrite: bool) -> None:
    from m2pt.checkpoints.export import export_paths

    weights, config = export_paths(output)
    sources = {pathways.resolve(), (pathways.parent / "config.json").resolve()}
    if model_args_file:
        sources.add(Path(model_args_file).resolve())
    clobbered = [p for p in (weights, config) if p.resolve() in sources]
    if clobbered:
        raise FileExistsError(f"merge output {output} would overwrite {clobbered[0]}, which the merge reads; "
                              "choose another output file")
    existing = [str(p) for p in (weights, config) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{' and '.join(existing)} already exist(s); pass --overwrite to replace, or choose "
                              "another output file")


def merge_pathway_file(pathways: str | Path, output: str | Path, model_args_file: Optional[str | Path] = None,
                       overwrite: bool = False) -> Path:
    """Rebuild the target from its ``model_args``, load the pathways, merge, save.

    The ``model_args`` come from the pathway file itself (``save_pathways`` stores them), else
    from ``model_args_file`` or the run's ``config.json``.

    Args:
        pathways: A ``pathways.safetensors`` file or the run folder holding it.
        output: Where to write the plain model (``.safetensors``).
        model_args_file: JSON with ``model_args`` (default: the run's ``config.json``).
        overwrite: Replace an existing output (never the pathway file itself).

    Raises:
        FileNotFoundError: the pathway file or the model arguments are missing.
        FileExistsError: the output (or its ``.json`` config) exists and ``overwrite`` is False,
            or the output is a file of the run that the merge reads (the pathway file, config).
    """
    from m2pt.models import create_model_from_args

    pathways = Path(pathways)
    if pathways.is_dir():
        pathways = pathways / "pathways.safetensors"
    if not pathways.is_file():
        raise FileNotFoundError(f"pathway file {pathways} does not exist")
    _check_output(pathways, Path(output), model_args_file, overwrite)
    model_args = None if model_args_file else pathway_file_model_args(pathways)
    if model_args is None:
        args_file = Path(model_args_file) if model_args_file else pathways.parent / "config.json"
        if not args_file.is_file():
            raise FileNotFoundError(f"{args_file} with the target's model_args does not exist; pass --config")
        model_args = json.loads(args_file.read_text()).get("model_args")
        if not model_args:
            raise ValueError(f"{args_file} has no 'model_args'")
    model = load_pathways(create_model_from_args(model_args), pathways)
    return save_model(merge_pathways(model, inplace=True), output, **_run_card(pathways.parent / "config.json"))


def _run_card(config_file: Path) -> dict:
    """The classes and input spec a run recorded in its ``config.json`` (empty when absent)."""
    try:
        stored = json.loads(config_file.read_text()) if config_file.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return {k: stored[k] for k in ("classes", "input_spec") if stored.get(k) is not None}
