"""Writing result tables as ``.csv``, ``.md`` and ``.tex`` in one call.

:func:`write_table` writes one DataFrame in three formats next to each other:

- ``<stem>.csv``: plain, machine readable, every value as pandas writes it (``inf`` for a diverged
  value, an empty field for a missing one), no comment lines, so any CSV reader takes it as is;
- ``<stem>.json``: the sidecar that says how the CSV (and the other two files) were made;
- ``<stem>.md``: a Markdown table (pandas ``to_markdown``, which needs ``tabulate``) preceded by an
  HTML comment with the provenance and followed by a ``Table: caption`` line;
- ``<stem>.tex``: a booktabs table (``Styler.to_latex`` with ``hrules=True``: ``\\toprule``,
  ``\\midrule``, ``\\bottomrule``) preceded by ``%`` comment lines with the provenance.

In the Markdown and LaTeX files an infinite value is written ``diverged`` and a missing value
(NaN, None) ``missing``, the vocabulary of :mod:`goals.robust`: a relative deviation is infinite
when a strategy diverged and NaN when it has no runs. Floats are written with ``float_format``.

Provenance (STYLE rule 7: every result file says how it was made) holds the writer, the package,
Python, pandas and numpy versions, the git commit of the working tree when there is one, and
whatever the caller adds (profile, configuration, source of the records). It holds no time stamp,
so the same records give the same bytes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from goals.paths import git_state, repo_relative

logger = logging.getLogger(__name__)

#: Text written in ``.md`` and ``.tex`` for an infinite value.
DIVERGED = "diverged"
#: Text written in ``.md`` and ``.tex`` for a missing value.
MISSING = "missing"

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def git_commit(path: str | Path | None = None) -> str:
    """Return the git commit of the working tree that holds ``path`` (default: this package).

    A ``+dirty`` suffix says the tree had uncommitted changes to tracked files outside
    ``figures/`` and ``runs/`` (which ``make reproduce`` rewrites while it writes results; see
    :func:`goals.paths.git_state`). Returns ``"unknown"`` outside a git checkout or without git.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    commit, dirty = git_state(where)
    if commit is None:
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def _package_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return "unknown"
    try:
        return version("goals-companion")
    except PackageNotFoundError:
        return "unknown"


def provenance(extra: Mapping[str, Any] | None = None, *, made_by: str = "") -> dict[str, str]:
    """Describe how a result file was made.

    Args:
        extra: caller's entries (profile, configuration, source of the records); they come last
            and override nothing already present under the same key.
        made_by: the function that made the file, e.g. ``"goals.robust.robustness_report"``.

    Returns:
        An ordered mapping of strings, ready to be written as comment lines or JSON.
    """
    info = {
        "made_by": made_by or "goals.tables.write_table",
        "goals_companion": _package_version(),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "numpy": np.__version__,
    }
    for key, value in (extra or {}).items():
        info.setdefault(str(key), _portable(value))
    return info


def _portable(value: Any) -> str:
    # Absolute paths inside the repository are written relative to its root, so committed
    # results do not name the folder of the machine that made them.
    if isinstance(value, os.PathLike) or (isinstance(value, str) and Path(value).is_absolute()):
        return repo_relative(value)
    return str(value)


def render_cell(value: Any, float_format: str = "{:.4g}") -> str:
    """Render one cell for the human-readable formats.

    ``inf`` becomes ``diverged``, NaN/None/NA ``missing``, a float goes through ``float_format``,
    a bool becomes ``yes``/``no``; anything else is ``str(value)``.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return MISSING
        if math.isinf(value):
            return DIVERGED if value > 0 else f"-{DIVERGED}"
        return float_format.format(float(value))
    return str(value)


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)


def _flatten_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Bring a non-trivial index into the columns and flatten MultiIndex column labels."""
    out = df.copy()
    if not isinstance(out.index, pd.RangeIndex) or out.index.name is not None:
        out = out.reset_index()
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = [" ".join(str(part) for part in col if str(part)) for col in out.columns]
    out.columns = [str(col) for col in out.columns]
    return out


def _rendered(df: pd.DataFrame, float_format: str) -> pd.DataFrame:
    """String frame for ``.md``/``.tex``: every cell rendered by :func:`render_cell`."""
    return pd.DataFrame(
        {col: [render_cell(v, float_format) for v in df[col].tolist()] for col in df.columns},
        columns=df.columns,
    )


def _alignment(df: pd.DataFrame) -> list[str]:
    return [
        "right" if pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(
            df[col]) else "left"
        for col in df.columns
    ]


def write_table(
    df: pd.DataFrame,
    path_stem: str | Path,
    caption: str,
    *,
    float_format: str = "{:.4g}",
    provenance_extra: Mapping[str, Any] | None = None,
    label: str | None = None,
) -> dict[str, Path]:
    """Write ``df`` as ``<stem>.csv`` (+ ``<stem>.json`` sidecar), ``<stem>.md`` and ``<stem>.tex``.

    Args:
        df: the table. A named or non-range index is written as leading column(s); MultiIndex
            column labels are joined with a space.
        path_stem: path without suffix; parent folders are created.
        caption: one sentence saying what the table shows; it goes into the ``.md`` (``Table:``
            line), the ``.tex`` (``\\caption``) and the sidecar JSON.
        float_format: format of floats in ``.md`` and ``.tex`` (the CSV keeps full precision).
        provenance_extra: entries added to the provenance (profile, configuration, source).
        label: LaTeX label; default ``tab:<stem name>``.

    Returns:
        Mapping ``{"csv", "json", "md", "tex"}`` -> written path.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    flat = _flatten_columns(df)
    info = provenance(provenance_extra, made_by="goals.tables.write_table")
    info_line = "; ".join(f"{key}={value}" for key, value in info.items())
    paths = {kind: stem.with_name(f"{stem.name}.{kind}") for kind in ("csv", "json", "md", "tex")}

    # CSV: plain values; its provenance lives in the sidecar JSON.
    flat.to_csv(paths["csv"], index=False)
    sidecar = {
        "caption": caption,
        "files": {kind: path.name for kind, path in paths.items()},
        "columns": list(flat.columns),
        "rows": len(flat),
        "provenance": info,
    }
    paths["json"].write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")

    # Markdown: HTML comment, the table, a pandoc-style caption line.
    rendered = _rendered(flat, float_format)
    align = _alignment(flat)
    body = rendered.to_markdown(index=False, disable_numparse=True, colalign=align)
    comment = info_line.replace("--", "- -")
    paths["md"].write_text(
        f"<!-- {comment} -->\n\n{body}\n\nTable: {caption}\n", encoding="utf-8"
    )

    # LaTeX: booktabs rules via hrules=True; cells and headers escaped.
    styler = rendered.style.hide(axis="index")
    styler = styler.format(escape="latex").format_index(escape="latex", axis=1)
    column_format = "".join("r" if side == "right" else "l" for side in align)
    tex = styler.to_latex(
        hrules=True,
        caption=_latex_escape(caption),
        label=label or f"tab:{stem.name}",
        column_format=column_format,
    )
    header = "".join(f"% {key}: {value}\n" for key, value in info.items())
    paths["tex"].write_text(header + tex, encoding="utf-8")

    logger.info("wrote table %s (.csv .json .md .tex), %d rows", stem, len(flat))
    return paths
