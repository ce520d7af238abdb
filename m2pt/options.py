"""Keyword options checked by name and type against a constructor's signature.

``--data-option bogus=1`` or ``--model-override depth=abc`` should end in an error that names
the option and says what is accepted, not in a ``TypeError`` from deep inside a constructor.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence


def constructor_defaults(classes: Sequence[Callable[..., Any]]) -> dict[str, Any]:
    """Keyword parameters (name -> default, ``inspect.Parameter.empty`` when required) of the
    constructors in ``classes`` and their base classes, without ``self`` and ``split``."""
    defaults: dict[str, Any] = {}
    for cls in classes:
        for base in getattr(cls, "__mro__", (cls,)):
            init = vars(base).get("__init__") if isinstance(base, type) else base
            if init is None or base is object:
                continue
            for name, param in inspect.signature(init).parameters.items():
                if name in ("self", "split") or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                    continue
                defaults.setdefault(name, param.default)
    return defaults


def value_type_problem(value: Any, default: Any) -> str | None:
    """What ``value`` should be (e.g. ``"a whole number"``) when its type does not fit ``default``; else None."""
    if default is inspect.Parameter.empty or default is None or value is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "a whole number"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "text"
    if isinstance(default, (tuple, list)):
        return None if isinstance(value, (tuple, list, str)) else "a list (JSON, e.g. [0.5, 0.5])"
    return None
