"""Imports of packages that only some parts of m2pt need (installed with an extra)."""

from __future__ import annotations

import importlib
from types import ModuleType


def optional_import(name: str, extra: str, purpose: str) -> ModuleType:
    """Import ``name``, or fail with the ``pip install 'm2pt[extra]'`` that provides it.

    Args:
        name: Module to import, e.g. ``"av"``.
        extra: The m2pt extra that installs it (``data``, ``train``, ``hf``, ``onnx``).
        purpose: What needs it, for the message (e.g. ``"video decoding"``).

    Raises:
        ImportError: the package is not installed.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"{purpose} needs the package '{name.split('.')[0]}', which is not installed. "
            f"Install it with: pip install 'm2pt[{extra}]'") from exc
