"""Where the companion finds itself and its data.

Notebooks run with the caller's working directory under papermill and with the notebook's folder
under JupyterLab, so nothing here depends on the current directory: the repository root is found
from this package's own location.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that overrides the default data folder.
DATA_ROOT_ENV = "GOALS_DATA_ROOT"


def repo_root() -> Path:
    """Return the companion's repository root.

    Walks up from this file's folder to the first folder holding a ``pyproject.toml``. When the
    package is installed outside a checkout (no ``pyproject.toml`` above it), the package's parent
    folder is returned, so callers always get a usable folder.
    """
    package_dir = Path(__file__).resolve().parent
    for folder in (package_dir, *package_dir.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return package_dir.parent


def default_data_root() -> Path:
    """Return the folder where data sets are looked for by default.

    ``$GOALS_DATA_ROOT`` when set and non-empty, else ``<repo>/data`` (ignored by git).
    """
    override = os.environ.get(DATA_ROOT_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return repo_root() / "data"
