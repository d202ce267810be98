"""Where the companion finds itself and its data.

Notebooks run with the caller's working directory under papermill and with the notebook's folder
under JupyterLab, so nothing here depends on the current directory: the repository root is found
from this package's own location.
"""

from __future__ import annotations

import os
import subprocess
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


#: Folders the reproduction rewrites (results, records); their changes do not make a tree dirty.
GENERATED_DIRS: tuple[str, ...] = ("figures", "runs")


def git_state(path: str | os.PathLike | None = None) -> tuple[str | None, bool | None]:
    """Return the git commit of the checkout holding ``path`` and whether it has local changes.

    Args:
        path: a file or folder inside the checkout (default: the repository root).

    Returns:
        ``(commit, dirty)``; ``dirty`` ignores untracked files and changes under
        :data:`GENERATED_DIRS`, which ``make reproduce`` rewrites while it records provenance.
        ``(None, None)`` outside a git checkout or without git.
    """
    where = Path(path) if path is not None else repo_root()
    if where.is_file():
        where = where.parent
    excluded = [f":(top,exclude){name}" for name in GENERATED_DIRS]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excluded],
            cwd=where, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    if not commit:
        return None, None
    return commit, bool(changes)


def repo_relative(path: str | os.PathLike) -> str:
    """Return ``path`` relative to the repository root when it lies inside it, else unchanged.

    Provenance written into committed results then reads the same on every clone.
    """
    text = os.fspath(path)
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        return text
    root = repo_root()
    for base in (root, root.resolve()):
        for target in (candidate, candidate.resolve()):
            try:
                relative = target.relative_to(base)
            except ValueError:
                continue
            return relative.as_posix() or "."
    return text
