"""Batch runner: execute the companion's notebooks in order with papermill, for one profile.

A *profile* is a YAML parameter file under ``profiles/`` (``quick``, ``cifar10-cpu``, ``paper``,
``tiny``) or a path to one. Its ``notebooks:`` section maps a notebook name to the parameters that
notebook receives; every notebook that declares the parameters ``profile`` and ``output_root`` also
receives the profile and the output folder. Nothing else is injected.

Outputs, below ``out_root`` (the repository root by default):

- ``runs/<profile>/<notebook>.ipynb``: the executed notebooks, and
  ``runs/<profile>/reproduce_summary.json``: status and seconds per notebook, machine, versions;
- ``figures/<profile>/``: figures (PDF and PNG), written by the notebooks;
- ``tables/<profile>/``: tables (CSV, Markdown, LaTeX), written by the notebooks.

Each notebook runs in a fresh ``python3`` kernel whose working directory is the repository root.
A failing notebook is reported with the cell that failed; the remaining notebooks still run, and
:func:`main` exits non-zero.

Usage::

    python -m goals reproduce --profile quick
    python -m goals reproduce --profile tiny --notebooks 01 03 --out-root /tmp/goals-out

or from Python::

    from goals.reproduce import reproduce
    results = reproduce("quick")
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import logging
import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from goals.paths import repo_root

logger = logging.getLogger(__name__)

#: Parameters the runner fills in itself when a notebook declares them.
RUNNER_PARAMETERS: tuple[str, ...] = ("profile", "output_root")

#: Environment of the notebook kernels: no progress bars in batch logs; figures go inline into
#: the executed notebook (and are closed after each cell) even when the caller set another
#: matplotlib backend, e.g. ``MPLBACKEND=Agg`` in a test run.
KERNEL_ENVIRONMENT: dict[str, str] = {
    "TQDM_DISABLE": "1",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}


class ProfileError(ValueError):
    """A profile file is missing or names parameters a notebook does not have."""


@dataclass
class NotebookResult:
    """Outcome of one executed notebook.

    Attributes:
        name: notebook name without suffix, e.g. "01_line_search_behaviour".
        ok: whether every cell ran without error.
        seconds: wall time of the execution.
        output_path: the executed notebook.
        parameters: the parameters injected.
        error: one-line description of the failure ("" when ok).
        failed_cell: execution count and first source lines of the failing cell ("" when ok or
            when the failure happened outside a cell, e.g. the kernel did not start).
    """

    name: str
    ok: bool
    seconds: float
    output_path: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    failed_cell: str = ""


def notebooks_dir() -> Path:
    """The folder holding the companion's notebooks."""
    return repo_root() / "notebooks"


def available_notebooks() -> list[str]:
    """Names of the numbered notebooks (``NN_name.ipynb``), in execution order."""
    return sorted(path.stem for path in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def profile_path(profile: str | Path) -> Path:
    """Resolve a profile name (``profiles/<name>.yaml``) or a path to a YAML file.

    Raises:
        ProfileError: when no such file exists; the message lists the known profiles.
    """
    candidate = Path(profile).expanduser()
    if candidate.suffix in {".yaml", ".yml"}:
        if not candidate.is_absolute() and not candidate.is_file():
            candidate = repo_root() / candidate
        if candidate.is_file():
            return candidate.resolve()
        raise ProfileError(f"profile file {candidate} does not exist")
    path = repo_root() / "profiles" / f"{profile}.yaml"
    if path.is_file():
        return path
    known = sorted(p.stem for p in (repo_root() / "profiles").glob("*.yaml"))
    raise ProfileError(f"unknown profile {str(profile)!r}; known profiles: {known} "
                       f"(or pass a path to a .yaml file)")


def profile_name(profile: str | Path) -> str:
    """The name used for output folders: the profile's file stem."""
    return profile_path(profile).stem


def load_profile(profile: str | Path) -> dict[str, Any]:
    """Read a profile YAML file into a dict."""
    path = profile_path(profile)
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a mapping, got {type(data).__name__}")
    return data


def _check_json(value: Any, where: str) -> None:
    """Reject values papermill cannot pass faithfully (it quotes tuples, paths, numpy scalars)."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProfileError(f"{where}: non-finite number {value!r}")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ProfileError(f"{where}: mapping key {key!r} is not a string")
            _check_json(item, f"{where}.{key}")
        return
    hint = ""
    if isinstance(value, (datetime.date, datetime.datetime)):
        hint = " (YAML read it as a date; quote it)"
    raise ProfileError(f"{where}: {value!r} of type {type(value).__name__} is not a plain "
                       f"JSON value (str, int, float, bool, None, list, dict){hint}")


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """Parameters declared in a notebook's ``parameters`` cell (name -> papermill's description)."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


def notebook_parameters(profile: str | Path, name: str, out_root: Path | None,
                        declared: Mapping[str, Any]) -> dict[str, Any]:
    """Build the parameters of one notebook from a profile and check them.

    Args:
        profile: profile name or path.
        name: notebook name without suffix.
        out_root: output root passed to the notebook as ``output_root``; ``None`` passes ""
            (the notebooks then write figures under the repository and run records where the
            profile's ``sweep.out`` says).
        declared: the notebook's declared parameters (see :func:`declared_parameters`).

    Returns:
        Plain-JSON parameters.

    Raises:
        ProfileError: for an unknown parameter name (papermill itself would only warn) or a value
            that is not plain JSON.
    """
    config = load_profile(profile)
    section = config.get("notebooks") or {}
    if not isinstance(section, dict):
        raise ProfileError(f"profile {profile}: 'notebooks' must map notebook names to "
                           f"parameters")
    unknown_notebooks = sorted(set(section) - set(available_notebooks()))
    if unknown_notebooks:
        raise ProfileError(f"profile {profile}: 'notebooks' names unknown notebook(s) "
                           f"{unknown_notebooks}; known: {available_notebooks()}")
    params = dict(section.get(name) or {})
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ProfileError(f"profile {profile}: notebook {name} has no parameter(s) {unknown}; "
                           f"its parameters are {sorted(declared)}")
    clash = sorted(set(params) & set(RUNNER_PARAMETERS))
    if clash:
        raise ProfileError(f"profile {profile}: {clash} are set by the runner, not the profile")
    if "profile" in declared:
        # A name stays a name; a file is passed as an absolute path, since the kernel's working
        # directory is the repository root, not the caller's.
        named = Path(profile).suffix not in {".yaml", ".yml"}
        params["profile"] = str(profile) if named else str(profile_path(profile))
    if "output_root" in declared:
        params["output_root"] = str(out_root) if out_root is not None else ""
    _check_json(params, f"profile {profile}: notebooks.{name}")
    return json.loads(json.dumps(params))


def _select(names: Sequence[str] | None) -> list[str]:
    """Pick notebooks by full name or by numeric prefix ("01"), keeping execution order."""
    available = available_notebooks()
    if not names:
        return available
    chosen = []
    for wanted in names:
        wanted = Path(wanted).stem
        matches = [n for n in available if n == wanted or n.split("_", 1)[0] == wanted]
        if not matches:
            raise ProfileError(f"unknown notebook {wanted!r}; available: {available}")
        chosen.extend(m for m in matches if m not in chosen)
    return [n for n in available if n in chosen]


def _describe_failure(error: BaseException) -> tuple[str, str]:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, PapermillExecutionError):
        lines = [line for line in (error.source or "").splitlines() if line.strip()]
        excerpt = "\n".join(f"    {line}" for line in lines[:6])
        if len(lines) > 6:
            excerpt += "\n    ..."
        cell = f"cell [{error.exec_count}] (index {error.cell_index}):\n{excerpt}"
        return f"{error.ename}: {error.evalue}", cell
    return f"{type(error).__name__}: {error}", ""


@functools.cache
def _ipc_kernel_manager() -> type:
    """A kernel manager that talks to its kernel over local IPC sockets instead of TCP ports.

    Nothing listens on a network port, no two kernels can race for one, and the kernel does not
    warn about unencrypted TCP traffic in every batch log.
    """
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)

    return IPCKernelManager


def run_notebook(name: str, profile: str | Path, out_root: Path | None,
                 execution_timeout: int | None = None) -> NotebookResult:
    """Execute one notebook with papermill and report what happened (never raises on failure).

    Args:
        name: notebook name without suffix.
        profile: profile name or path.
        out_root: root of ``runs/`` and ``figures/`` (None: the repository root, with run
            records where the profile says).
        execution_timeout: seconds one cell may run (None: no limit).

    Returns:
        The notebook's :class:`NotebookResult`.
    """
    import papermill

    source = notebooks_dir() / f"{name}.ipynb"
    output = (out_root or repo_root()) / "runs" / profile_name(profile) / f"{name}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    params: dict[str, Any] = {}
    try:
        params = notebook_parameters(profile, name, out_root, declared_parameters(source))
        papermill.execute_notebook(
            str(source), str(output), parameters=params, kernel_name="python3",
            cwd=str(repo_root()), progress_bar=False, log_output=False,
            execution_timeout=execution_timeout, kernel_manager_class=_ipc_kernel_manager(),
        )
    except Exception as error:  # noqa: BLE001 - one notebook's failure must not stop the others
        message, cell = _describe_failure(error)
        return NotebookResult(name, False, time.perf_counter() - start, output, params, message,
                              cell)
    return NotebookResult(name, True, time.perf_counter() - start, output, params)


def reproduce(profile: str | Path = "quick", notebooks: Sequence[str] | None = None,
              out_root: str | Path | None = None,
              execution_timeout: int | None = None) -> list[NotebookResult]:
    """Execute the companion's notebooks in order for one profile.

    Parameters of every selected notebook are checked before the first one runs, so a typo in a
    profile fails at once instead of after an hour of training.

    Args:
        profile: profile name (``profiles/<name>.yaml``) or path to a YAML file.
        notebooks: names or numeric prefixes of the notebooks to run (default: all, in order).
        out_root: root of ``runs/<profile>/`` (executed notebooks and run records) and
            ``figures/<profile>/`` (figures and tables). Default: the repository root, with run
            records where the profile's ``sweep.out`` says (``runs/<profile>/`` unless set).
        execution_timeout: seconds one cell may run (None: no limit).

    Returns:
        One :class:`NotebookResult` per notebook, in execution order.

    Raises:
        ProfileError: for a missing profile, an unknown notebook or an unknown parameter.
    """
    root = Path(out_root).expanduser().resolve() if out_root else None
    names = _select(notebooks)
    for name in names:
        notebook_parameters(profile, name, root,
                            declared_parameters(notebooks_dir() / f"{name}.ipynb"))
    saved = {key: os.environ.get(key) for key in KERNEL_ENVIRONMENT}
    os.environ.update(KERNEL_ENVIRONMENT)  # kernels inherit the environment of this process
    try:
        results = [_run_logged(index, names, profile, root, execution_timeout)
                   for index in range(1, len(names) + 1)]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    write_summary(results, profile, root)
    return results


def write_summary(results: Sequence[NotebookResult], profile: str | Path,
                  out_root: Path | None) -> Path:
    """Write ``runs/<profile>/reproduce_summary.json``: what ran, how long, on what, from what.

    The file holds each notebook's status, seconds, error and failed cell, the total, the
    machine (CPU count, processor, platform) and the provenance of :func:`goals.tables.provenance`
    (package versions, git commit). It is the source of the measured times in the README.

    Returns:
        The path written.
    """
    from importlib.metadata import PackageNotFoundError, version

    from goals.tables import provenance

    def package(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    summary_path = (out_root or repo_root()) / "runs" / profile_name(profile) / (
        "reproduce_summary.json")
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    content = {
        "profile": profile_name(profile),
        "profile_file": str(profile_path(profile)),
        "notebooks": [{"name": r.name, "ok": r.ok, "seconds": round(r.seconds, 1),
                       "output": str(r.output_path), "parameters": r.parameters,
                       "error": r.error, "failed_cell": r.failed_cell} for r in results],
        "total_seconds": round(sum(r.seconds for r in results), 1),
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                    "platform": platform.platform()},
        "provenance": provenance({"torch": package("torch"), "papermill": package("papermill")},
                                 made_by="goals.reproduce"),
    }
    summary_path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    logger.info("summary written to %s", summary_path)
    return summary_path


def _run_logged(index: int, names: Sequence[str], profile: str | Path, root: Path | None,
                execution_timeout: int | None) -> NotebookResult:
    """Run the ``index``-th (1-based) notebook of ``names`` and log its progress and outcome."""
    name = names[index - 1]
    logger.info("[%d/%d] %s: running (profile %s)", index, len(names), name,
                profile_name(profile))
    result = run_notebook(name, profile, root, execution_timeout)
    if result.ok:
        logger.info("[%d/%d] %s: done in %.1f s -> %s", index, len(names), name,
                    result.seconds, result.output_path)
    else:
        logger.error("[%d/%d] %s: FAILED after %.1f s: %s\n  in %s\n  executed notebook: %s",
                     index, len(names), name, result.seconds, result.error,
                     result.failed_cell or "(no cell: the notebook did not start)",
                     result.output_path)
    return result


def summary(results: Sequence[NotebookResult]) -> str:
    """A short fixed-width table of the results, for the end of a batch log."""
    lines = [f"{'notebook':<28} {'status':<7} {'seconds':>8}"]
    for result in results:
        status = "ok" if result.ok else "FAILED"
        lines.append(f"{result.name:<28} {status:<7} {result.seconds:>8.1f}")
    total = sum(r.seconds for r in results)
    failed = sum(not r.ok for r in results)
    lines.append(f"{'total':<28} {f'{failed} failed' if failed else 'ok':<7} {total:>8.1f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m goals reproduce``."""
    parser = argparse.ArgumentParser(
        prog="python -m goals reproduce",
        description="Execute the companion's notebooks in order with papermill for one profile.",
    )
    parser.add_argument("--profile", default="quick",
                        help="profile name under profiles/ or a path to a YAML file "
                             "(default: quick)")
    parser.add_argument("--notebooks", nargs="+", metavar="NAME",
                        help="notebook names or numeric prefixes, e.g. 01 03 (default: all)")
    parser.add_argument("--out-root", default=None,
                        help="root of runs/, figures/ and tables/ (default: the repository)")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds one notebook cell may run (default: no limit)")
    parser.add_argument("--list", action="store_true",
                        help="list the notebooks and profiles, then exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m goals reproduce``; returns the process exit status.

    Exit status: 0 when every notebook ran, 1 when any failed, 2 for a bad profile or argument.
    """
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                            format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # papermill logs every input and output path at INFO; progress comes from this module.
    logging.getLogger("papermill").setLevel(logging.WARNING)
    if args.list:
        profiles = sorted(p.stem for p in (repo_root() / "profiles").glob("*.yaml"))
        logger.info("notebooks: %s", " ".join(available_notebooks()))
        logger.info("profiles: %s", " ".join(profiles))
        return 0
    start = time.perf_counter()
    try:
        results = reproduce(args.profile, args.notebooks, args.out_root, args.timeout)
    except ProfileError as error:
        logger.error("%s", error)
        return 2
    logger.info("summary (profile %s):\n%s\nelapsed %.1f s", profile_name(args.profile),
                summary(results), time.perf_counter() - start)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
