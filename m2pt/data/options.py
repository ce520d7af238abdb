"""Checking dataset options by name and type before a dataset class sees them."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Sequence

from m2pt.data.errors import DatasetError
from m2pt.options import constructor_defaults, value_type_problem


def check_options(options: Mapping[str, Any], classes: Sequence[Callable[..., Any]], what: str,
                  accepted_extra: Sequence[str] = ()) -> None:
    """Refuse options that none of ``classes`` accepts, or whose value has the wrong type.

    Args:
        options: The options given (e.g. ``--data-option`` values parsed as JSON).
        classes: Dataset classes the options will go to (any one accepting an option is enough).
        what: How to name the dataset in messages.
        accepted_extra: Further option names that are handled elsewhere.

    Raises:
        DatasetError: naming the option, the value, and the accepted names or type.
    """
    defaults = constructor_defaults(classes)
    accepted = sorted(set(defaults) | set(accepted_extra))
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(f"unknown data option(s) {', '.join(unknown)} for {what}; accepted options: "
                           f"{', '.join(a for a in accepted if a != 'transform')}")
    for name, value in options.items():
        expected = value_type_problem(value, defaults.get(name, inspect.Parameter.empty))
        if expected:
            raise DatasetError(f"data option {name}={value!r} for {what} must be {expected} "
                               f"(default {defaults[name]!r})")
