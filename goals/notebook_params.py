"""Validation of notebook parameters, for the cell that follows each ``parameters`` cell.

papermill injects parameters as Python literals, but what arrives is only as good as the caller's
types: ``-p lr false`` gives the *string* "false", PyYAML reads ``1e-3`` as a string, and the Python
API turns tuples and paths into quoted strings. Each notebook therefore checks every parameter right
after the (possibly injected) parameters and fails with one clear message naming the parameter, the
value it got and what it expected.

Example (a notebook's validation cell)::

    from goals.notebook_params import check, check_list

    seed = check("seed", seed, int, min_value=0)
    step_sizes = check_list("step_sizes", step_sizes, float, min_value=0.0, min_length=1)
    mbss = check("mbss", mbss, str, choices=("static", "dynamic"))
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_TYPE_NAMES: dict[type, str] = {int: "an integer", float: "a number", str: "a string",
                                bool: "True or False", list: "a list", dict: "a mapping"}


class ParameterError(ValueError):
    """A notebook parameter has the wrong type or an unknown value."""


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _looks_numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def check(name: str, value: Any, kind: type, *, choices: Iterable[Any] | None = None,
          min_value: float | None = None, max_value: float | None = None,
          allow_none: bool = False) -> Any:
    """Check one scalar parameter and return it (ints are returned as floats where floats are due).

    Args:
        name: parameter name, for the message.
        value: the value the notebook received.
        kind: expected type: ``int``, ``float``, ``str`` or ``bool``.
        choices: allowed values, if the parameter is an enumeration.
        min_value: smallest allowed value (numbers only).
        max_value: largest allowed value (numbers only).
        allow_none: accept ``None`` as well.

    Returns:
        The value, as ``float`` when ``kind`` is ``float``.

    Raises:
        ParameterError: with the parameter's name, the value received and what was expected.
    """
    if value is None and allow_none:
        return None
    expected = _TYPE_NAMES.get(kind, kind.__name__)
    hint = ""
    if kind is bool:
        ok = isinstance(value, bool)
        if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no"}:
            hint = (" papermill's -p only turns True/False into booleans; pass True or False "
                    "(capitalised) or use a YAML parameter file")
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, float) and value.is_integer():
            hint = f" write {int(value)} without a decimal point"
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(value, str) and _looks_numeric(value):
            hint = (" a YAML value such as 1e-3 is read as a string; write it as 1.0e-3")
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ParameterError(f"parameter {name!r} must be {expected}, got {_describe(value)}."
                             f"{hint}")
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            raise ParameterError(f"parameter {name!r} must be finite, got {value!r}")
    if choices is not None:
        allowed = list(choices)
        if value not in allowed:
            raise ParameterError(f"parameter {name!r} must be one of {allowed}, got "
                                 f"{_describe(value)}")
    if min_value is not None and value < min_value:
        raise ParameterError(f"parameter {name!r} must be >= {min_value}, got {value!r}")
    if max_value is not None and value > max_value:
        raise ParameterError(f"parameter {name!r} must be <= {max_value}, got {value!r}")
    return value


def check_list(name: str, value: Any, kind: type, *, choices: Iterable[Any] | None = None,
               min_value: float | None = None, max_value: float | None = None,
               min_length: int = 0, unique: bool = False) -> list[Any]:
    """Check a list parameter whose items all have one type.

    Args:
        name: parameter name, for the message.
        value: the value the notebook received (must be a list; a tuple passed through papermill's
            Python API arrives as a string, which is rejected with a hint).
        kind: type of every item.
        choices: allowed item values.
        min_value: smallest allowed item (numbers only).
        max_value: largest allowed item (numbers only).
        min_length: fewest items.
        unique: reject repeated items.

    Returns:
        A new list of checked items.

    Raises:
        ParameterError: naming the parameter and the offending item.
    """
    if not isinstance(value, list):
        hint = ""
        if isinstance(value, str) and value.strip().startswith(("(", "[")):
            hint = (" (a tuple or list passed as a string: pass a plain list, e.g. with "
                    "papermill -y or a YAML parameter file)")
        raise ParameterError(f"parameter {name!r} must be a list, got {_describe(value)}{hint}")
    if len(value) < min_length:
        raise ParameterError(f"parameter {name!r} needs at least {min_length} item(s), got "
                             f"{len(value)}")
    items = [check(f"{name}[{i}]", item, kind, choices=choices, min_value=min_value,
                   max_value=max_value) for i, item in enumerate(value)]
    if unique and len(set(map(repr, items))) != len(items):
        raise ParameterError(f"parameter {name!r} has repeated items: {items!r}")
    return items


def check_mapping(name: str, value: Any, keys: Sequence[str] | None = None,
                  value_kind: type | None = None) -> dict[str, Any]:
    """Check a mapping parameter: string keys from ``keys`` (if given), values of one type.

    Args:
        name: parameter name.
        value: the received value.
        keys: allowed keys (unknown keys are an error).
        value_kind: type of every value, checked with :func:`check`.

    Returns:
        A new dict.

    Raises:
        ParameterError: on a non-mapping, an unknown key or a wrong value type.
    """
    if not isinstance(value, dict):
        raise ParameterError(f"parameter {name!r} must be a mapping, got {_describe(value)}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ParameterError(f"parameter {name!r} has a non-string key {key!r}")
        if keys is not None and key not in keys:
            raise ParameterError(f"parameter {name!r} has unknown key {key!r}; allowed: "
                                 f"{list(keys)}")
        out[key] = check(f"{name}[{key!r}]", item, value_kind) if value_kind else item
    return out


def output_root(value: str) -> Path:
    """Resolve the ``output_root`` parameter: empty means the repository root.

    Relative paths are taken relative to the repository root, never to the working directory
    (JupyterLab runs a notebook in its own folder, papermill in the caller's).

    Args:
        value: the ``output_root`` parameter.

    Returns:
        An absolute path.
    """
    from goals.paths import repo_root

    check("output_root", value, str)
    if not value:
        return repo_root()
    path = Path(value).expanduser()
    return path if path.is_absolute() else (repo_root() / path).resolve()


def sweep_folder(profile: str, output_root_value: str) -> Path:
    """Folder of a profile's run records (the one holding ``records/``).

    With an empty ``output_root`` it is the profile's own (``sweep.out``, by default
    ``runs/<profile>/`` in the repository); otherwise ``<output_root>/runs/<profile name>/``, so a
    test or a scratch run never touches the repository's records.

    Args:
        profile: profile name or path to its YAML file.
        output_root_value: the notebook's ``output_root`` parameter.

    Returns:
        An absolute path.
    """
    from goals.sweep import profile_out_dir, resolve_profile

    if not output_root_value:
        return profile_out_dir(profile)
    return output_root(output_root_value) / "runs" / resolve_profile(profile).stem
