"""Sweeps: a grid of run configurations, executed so that a killed sweep resumes losslessly.

A profile (``profiles/<name>.yaml``) holds its sweep under the ``sweep:`` key::

    sweep:
      out: runs/quick            # output folder; relative paths start at the repository root
      executor: sequential       # sequential | process | submitit
      workers: null              # process pool size (null: one per GPU, else 2)
      base:                      # fields shared by every run (see goals.runs.CONFIG_FIELDS)
        dataset: digits
        budget_fe: 1000
      grid:                      # fields to cross; every combination is one run
        model: [mlp, cnn]
        direction: [sgd, rmsprop, adam]
        strategy: [goals, constant]
        seed: [0, 1]
      submitit:                  # only for executor: submitit
        cluster: null            # null: Slurm if available; "local" runs jobs as local processes
        parameters: {timeout_min: 120, gpus_per_node: 1}

Runs are crossed in the grid's key order (the last key varies fastest). :func:`run_sweep`:

1. checks every configuration (:func:`goals.runs.validate_config`), that each data set can be
   found and that each ``device`` exists on this machine (not for the submitit executor, whose
   jobs run elsewhere), before any run starts;
2. writes ``<out>/manifest.json`` (all run ids and configurations of the sweep), so readers know
   which runs are expected and can tell missing ones apart (the last sweep started in a folder
   writes its manifest; records of earlier sweeps there stay valid);
3. skips every run whose complete record exists (optionally re-running ``failed`` ones), so a
   sweep that was killed resumes with nothing lost and nothing done twice;
4. runs the rest with :func:`goals.runs.run_one`, the same function under every executor, each
   record written atomically as soon as its run ends (:mod:`goals.records`).

Executors:

- ``sequential`` (default): in this process, one run after another.
- ``process``: a :class:`concurrent.futures.ProcessPoolExecutor` (spawned workers). When the runs
  use CUDA and GPUs are visible, each worker is pinned to one GPU through
  ``CUDA_VISIBLE_DEVICES`` (workers default to the number of GPUs; more workers than GPUs share
  them round-robin). On CPU it runs ``workers`` runs side by side.
- ``submitit``: one Slurm job array through submitit (``pip install 'goals-companion[cluster]'``);
  ``cluster: local`` runs the jobs as local processes, which is how it is tested. Without Slurm
  submitit falls back to those local processes; a warning says so, and at most ``workers`` (default:
  the number of CPU cores) run at a time. A job that dies without a record (time limit, node
  failure) is reported and done by the next call.

Progress is a tqdm bar over runs (``TQDM_DISABLE=1`` turns it off); each finished run is also
logged at INFO level.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime
import itertools
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from goals.data import check_dataset
from goals.paths import repo_root
from goals.records import (
    clean_stale,
    finished_runs,
    read_record,
    record_path,
    records_dir,
    run_id,
    write_record,
)
from goals.runs import CONFIG_FIELDS, ConfigError, run_one, validate_config

logger = logging.getLogger(__name__)

#: Executors accepted by :func:`run_sweep`.
EXECUTORS: tuple[str, ...] = ("sequential", "process", "submitit")

#: Keys allowed in a profile's ``sweep:`` section.
SWEEP_KEYS: tuple[str, ...] = ("out", "executor", "workers", "base", "grid", "submitit")

#: Name of the sweep manifest inside the output folder.
MANIFEST = "manifest.json"


class SweepError(ValueError):
    """A sweep specification or profile is invalid; the message names the key."""


# --- profiles and grids -------------------------------------------------------------------------


def resolve_profile(profile: str | os.PathLike) -> Path:
    """Path of a profile given as a file path or as a name under ``<repo>/profiles``."""
    path = Path(profile).expanduser()
    if path.is_file():
        return path
    named = repo_root() / "profiles" / f"{profile}.yaml"
    if named.is_file():
        return named
    known = sorted(p.stem for p in (repo_root() / "profiles").glob("*.yaml"))
    raise SweepError(f"profile {str(profile)!r} not found: no such file, and not one of {known}")


def yaml_error_message(error: yaml.YAMLError, source: str) -> str:
    """One line saying where YAML text is malformed: source, line and PyYAML's message."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
    parts = [getattr(error, "context", None), getattr(error, "problem", None)]
    message = "; ".join(str(part) for part in parts if part) or str(error)
    return f"{where}: invalid YAML: {' '.join(message.split())}"


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML text, turning a syntax error into a :class:`SweepError` naming ``source``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SweepError(yaml_error_message(error, source)) from None


def load_profile(profile: str | os.PathLike) -> dict[str, Any]:
    """Read a profile YAML file (by path or name) into a dict.

    Raises:
        SweepError: no such profile, malformed YAML (with file and line) or not a mapping.
    """
    path = resolve_profile(profile)
    data = load_yaml(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(data, dict):
        raise SweepError(f"{path}: a profile must be a mapping, got {type(data).__name__}")
    return data


def sweep_section(profile: str | os.PathLike | dict[str, Any]) -> dict[str, Any]:
    """The checked ``sweep:`` section of a profile (a path, a name or an already loaded dict)."""
    data = profile if isinstance(profile, dict) else load_profile(profile)
    section = data.get("sweep")
    if not isinstance(section, dict):
        raise SweepError("profile has no 'sweep:' mapping")
    unknown = sorted(set(section) - set(SWEEP_KEYS))
    if unknown:
        raise SweepError(f"sweep.{unknown[0]}: unknown key; allowed: {', '.join(SWEEP_KEYS)}")
    check_executor(section.get("executor") or "sequential", section.get("workers"), "sweep.")
    return section


def check_executor(executor: str, workers: Any, where: str = "") -> None:
    """Check an executor name and a worker count (a positive integer or ``None``).

    Args:
        executor: executor name.
        workers: process pool size.
        where: prefix of the field names in messages (``"sweep."``, ``"--"``).

    Raises:
        SweepError: naming the field.
    """
    if executor not in EXECUTORS:
        raise SweepError(f"{where}executor: {executor!r} is not one of {', '.join(EXECUTORS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise SweepError(f"{where}workers: expected a positive integer or null, got {workers!r}")


def expand_grid(base: dict[str, Any] | None, grid: dict[str, Sequence[Any]] | None
                ) -> list[dict[str, Any]]:
    """Cross the grid's value lists over the base configuration.

    Args:
        base: fields shared by every run.
        grid: field -> list of values; keys must be configuration fields and lists non-empty.

    Returns:
        One configuration per combination, in grid key order (last key fastest). Duplicates
        (same run id) are removed later, by :func:`prepare`.

    Raises:
        SweepError: a key that is not a configuration field, a field both in base and grid, or
            a grid value that is not a non-empty list.
    """
    base, grid = dict(base or {}), dict(grid or {})
    for section, keys in (("base", base), ("grid", grid)):
        unknown = sorted(set(keys) - set(CONFIG_FIELDS))
        if unknown:
            raise SweepError(f"sweep.{section}.{unknown[0]}: not a configuration field; fields: "
                             f"{', '.join(CONFIG_FIELDS)}")
    both = sorted(set(base) & set(grid))
    if both:
        raise SweepError(f"sweep.grid.{both[0]}: also set in sweep.base; set it in one place")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"sweep.grid.{key}: expected a non-empty list, got {values!r}")

    return [dict(base, **dict(zip(grid, combination)))
            for combination in itertools.product(*grid.values())]


def profile_configs(profile: str | os.PathLike | dict[str, Any]) -> list[dict[str, Any]]:
    """All run configurations of a profile's sweep."""
    section = sweep_section(profile)
    return expand_grid(section.get("base"), section.get("grid"))


def profile_out_dir(profile: str | os.PathLike | dict[str, Any]) -> Path:
    """Output folder of a profile's sweep; relative paths start at the repository root.

    Defaults to ``runs/<profile name>`` (``runs/sweep`` for a dict without a name).
    """
    section = sweep_section(profile)
    if section.get("out"):
        out = Path(str(section["out"])).expanduser()
    elif isinstance(profile, dict):
        out = Path("runs") / str(profile.get("name", "sweep"))
    else:
        out = Path("runs") / resolve_profile(profile).stem
    return out if out.is_absolute() else repo_root() / out


# --- running ------------------------------------------------------------------------------------


def prepare(configs: Iterable[dict[str, Any]], check_data: bool = True,
            check_device: bool | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Validate configurations (and data), returning ``(run_id, config)`` pairs without duplicates.

    Args:
        configs: run configurations.
        check_data: also check that each data set can be found.
        check_device: also check that each ``device`` exists on this machine (default: as
            ``check_data``).

    Raises:
        ConfigError: naming the run (by position and problem) and the field.
        goals.data.DataNotFoundError: a data set is missing.
    """
    if check_device is None:
        check_device = check_data
    prepared: dict[str, dict[str, Any]] = {}
    for index, config in enumerate(configs):
        try:
            complete = validate_config(config, check_device=check_device)
        except ConfigError as error:
            raise ConfigError(f"run {index} of the sweep: {error}") from error
        prepared.setdefault(run_id(complete), complete)
    if check_data:
        sources = {(c["dataset"], c["data_root"], c["download"]) for c in prepared.values()}
        for dataset, data_root, download in sorted(sources, key=str):
            check_dataset(dataset, data_root, download)
    return list(prepared.items())


def run_and_write(config: dict[str, Any], out_dir: str) -> tuple[str, str]:
    """Run one configuration and write its record; returns ``(run_id, status)``.

    This is what every executor calls, in whatever process it runs.
    """
    record = run_one(config)
    write_record(record, out_dir)
    logger.info("run %s %s/%s/%s/%s seed %s: %s, %s FEs, %.1f s", record["run_id"],
                config.get("dataset"), config.get("model"), config.get("direction"),
                config.get("strategy"), config.get("seed"), record["status"], record["fe"],
                record["wall_time"])
    return record["run_id"], record["status"]


def run_sweep(
    configs: Iterable[dict[str, Any]],
    out_dir: str | os.PathLike,
    executor: str = "sequential",
    workers: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    submitit_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every configuration that has no record yet under ``out_dir``.

    Args:
        configs: run configurations (see :data:`goals.runs.CONFIG_FIELDS`).
        out_dir: output folder; records go to ``<out_dir>/records/``.
        executor: ``"sequential"``, ``"process"`` or ``"submitit"``.
        workers: process pool size (default: number of GPUs when runs use CUDA, else 2); for
            submitit's local executor, the most jobs running at once (default: CPU cores).
        retry_failed: also re-run runs whose record says ``failed`` (not ``diverged``).
        progress: show a tqdm bar (``TQDM_DISABLE`` still applies).
        submitit_options: ``{"cluster": ..., "parameters": {...}}`` for the submitit executor.

    Returns:
        Summary: ``out_dir``, ``total`` runs in the sweep, ``skipped`` (already recorded),
        ``skipped_failed`` (failed records skipped because ``retry_failed`` is off), ``ran``
        (records written by this call), ``lost`` (jobs that ended without a record),
        ``statuses`` (status counts over this call's runs), ``failed`` (runs of the sweep whose
        record says ``failed``, new or older), ``failed_run_ids``, ``first_error`` (error text
        of the first of them, or ``None``), ``wall_time``. Failed runs do not raise: the
        command line turns them into exit status 1.

    Raises:
        ConfigError, goals.data.DataNotFoundError, SweepError: before any run starts.
    """
    check_executor(executor, workers)
    started = time.perf_counter()
    # Submitit jobs run on other machines: their devices cannot be checked from here.
    prepared = prepare(configs, check_device=executor != "submitit")
    out_dir = Path(out_dir)
    records_dir(out_dir).mkdir(parents=True, exist_ok=True)
    _write_manifest(out_dir, prepared)
    clean_stale(out_dir)

    finished = finished_runs(out_dir)
    todo = [(rid, config) for rid, config in prepared
            if rid not in finished or (retry_failed and finished[rid] == "failed")]
    logger.info("sweep %s: %d runs, %d already recorded, %d to run (%s executor)", out_dir,
                len(prepared), len(prepared) - len(todo), len(todo), executor)
    skipped_failed = 0 if retry_failed else sum(
        1 for rid, _ in prepared if finished.get(rid) == "failed")
    if skipped_failed:
        logger.warning("%d recorded runs failed; use --retry-failed to run them again "
                       "(retry_failed=True from Python)", skipped_failed)

    results: list[tuple[str, str]] = []
    lost = 0
    if todo:
        bar = _progress_bar(len(todo), progress)
        try:
            if executor == "sequential":
                for _, config in todo:
                    results.append(run_and_write(config, str(out_dir)))
                    bar.update(1)
            elif executor == "process":
                results = _run_process_pool(todo, out_dir, workers, bar)
            else:
                results, lost = _run_submitit(todo, out_dir, submitit_options or {}, workers,
                                              bar)
        finally:
            bar.close()

    failed, first_error = _failed_runs(out_dir, [rid for rid, _ in prepared])
    summary = {
        "out_dir": str(out_dir),
        "total": len(prepared),
        "skipped": len(prepared) - len(todo),
        "skipped_failed": skipped_failed,
        "ran": len(results),
        "lost": lost,
        "statuses": dict(collections.Counter(status for _, status in results)),
        "failed": len(failed),
        "failed_run_ids": failed,
        "first_error": first_error,
        "wall_time": time.perf_counter() - started,
    }
    logger.info("sweep %s done: %s", out_dir, summary)
    return summary


def _failed_runs(out_dir: Path, run_ids: Sequence[str]) -> tuple[list[str], str | None]:
    """Run ids of the sweep whose record says ``failed`` (new or older), and the first error."""
    finished = finished_runs(out_dir)
    failed = [rid for rid in run_ids if finished.get(rid) == "failed"]
    first_error = None
    if failed:
        record = read_record(record_path(out_dir, failed[0])) or {}
        first_error = str(record.get("error") or "no error text recorded")
    return failed, first_error


def sweep_profile(
    profile: str | os.PathLike | dict[str, Any],
    out_dir: str | os.PathLike | None = None,
    executor: str | None = None,
    workers: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run a profile's sweep; arguments given here override the profile's own.

    Args:
        profile: profile name (``"quick"``), path, or loaded dict.
        out_dir: output folder (default: the profile's ``sweep.out``, see :func:`profile_out_dir`).
        executor: executor (default: the profile's, else ``"sequential"``).
        workers: process pool size (default: the profile's).
        retry_failed: re-run failed runs.
        progress: show a progress bar.

    Returns:
        The summary of :func:`run_sweep`.
    """
    section = sweep_section(profile)
    return run_sweep(
        profile_configs(profile),
        out_dir if out_dir is not None else profile_out_dir(profile),
        executor=executor or section.get("executor") or "sequential",
        workers=workers if workers is not None else section.get("workers"),
        retry_failed=retry_failed,
        progress=progress,
        submitit_options=section.get("submitit"),
    )


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a sweep folder (``run_ids``, ``configs``), or ``None`` if there is none."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _write_manifest(out_dir: Path, prepared: list[tuple[str, dict[str, Any]]]) -> None:
    manifest = {
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run_ids": [rid for rid, _ in prepared],
        "configs": [config for _, config in prepared],
    }
    tmp = out_dir / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, out_dir / MANIFEST)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    # Plain text bar (no notebook widgets needed). Leaving ``disable`` unset lets tqdm honour
    # the TQDM_DISABLE environment variable.
    options = {} if enabled else {"disable": True}
    return tqdm(total=total, desc="runs", unit="run", **options)


# --- process pool -------------------------------------------------------------------------------


def _visible_gpus() -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [item.strip() for item in visible.split(",") if item.strip()]
    return [str(index) for index in range(torch.cuda.device_count())]


def _pin_worker(gpu_queue: Any) -> None:
    # Runs first in each spawned worker, before CUDA is initialised there.
    if gpu_queue is not None:
        gpu = gpu_queue.get()
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        logger.info("worker %d uses GPU %s", os.getpid(), gpu)


def _run_process_pool(todo, out_dir: Path, workers: int | None, bar) -> list[tuple[str, str]]:
    uses_cuda = any(str(config["device"]).startswith("cuda") for _, config in todo)
    gpus = _visible_gpus() if uses_cuda else []
    workers = workers or (len(gpus) if gpus else 2)
    context = multiprocessing.get_context("spawn")
    gpu_queue = None
    if gpus:
        gpu_queue = context.Queue()
        for index in range(workers):
            gpu_queue.put(gpus[index % len(gpus)])
        cuda_index = [config for _, config in todo if ":" in str(config["device"])]
        if cuda_index:
            logger.warning("device %s names a GPU index; with one GPU per worker use 'cuda'",
                           cuda_index[0]["device"])

    results = []
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                                  initializer=_pin_worker, initargs=(gpu_queue,))
    try:
        futures = [pool.submit(run_and_write, config, str(out_dir)) for _, config in todo]
        for future in concurrent.futures.as_completed(futures):
            results.append(future.result())
            bar.update(1)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


# --- submitit -----------------------------------------------------------------------------------


def _run_submitit(todo, out_dir: Path, options: dict[str, Any], workers: int | None, bar
                  ) -> tuple[list[tuple[str, str]], int]:
    try:
        import submitit
    except ImportError as error:
        raise SweepError("executor 'submitit' needs submitit: pip install "
                         "'goals-companion[cluster]' (or pip install submitit)") from error
    unknown = sorted(set(options) - {"cluster", "parameters"})
    if unknown:
        raise SweepError(f"sweep.submitit.{unknown[0]}: unknown key; allowed: cluster, parameters")

    executor = submitit.AutoExecutor(folder=str(out_dir / "submitit" / "%j"),
                                     cluster=options.get("cluster"))
    executor.update_parameters(**(options.get("parameters") or {}))
    if executor.cluster != "local":
        jobs = executor.map_array(run_and_write, [config for _, config in todo],
                                  [str(out_dir)] * len(todo))
        logger.info("submitted %d runs as submitit jobs (%s)", len(jobs), executor.cluster)
        results, lost = [], 0
        for job, (rid, _) in zip(jobs, todo):
            lost += _collect_job(job, rid, results)
            bar.update(1)
        return results, lost

    # submitit's local executor starts every job at once; keep at most ``limit`` running.
    limit = workers or os.cpu_count() or 1
    if options.get("cluster") is None:
        logger.warning("executor 'submitit': no Slurm cluster found, so submitit falls back to its "
                       "local executor: the runs are processes on this machine, at most %d at a "
                       "time (set workers or --workers to change it)", limit)
    return _run_local_window(executor, todo, out_dir, limit, bar)


def _collect_job(job: Any, rid: str, results: list[tuple[str, str]]) -> int:
    # Appends the job's (run_id, status); returns 1 when the job died without its record.
    try:
        results.append(job.result())
    except Exception as error:  # the job died without writing its record
        logger.error("job %s for run %s ended without a record: %s", job.job_id, rid, error)
        return 1
    return 0


def _run_local_window(executor: Any, todo, out_dir: Path, limit: int, bar,
                      poll_seconds: float = 0.5) -> tuple[list[tuple[str, str]], int]:
    pending = list(todo)
    running: list[tuple[Any, str]] = []
    results: list[tuple[str, str]] = []
    lost = 0
    logger.info("running %d runs as local submitit jobs, at most %d at a time", len(todo), limit)
    try:
        while pending or running:
            while pending and len(running) < limit:
                rid, config = pending.pop(0)
                running.append((executor.submit(run_and_write, config, str(out_dir)), rid))
            done = [(job, rid) for job, rid in running if job.done()]
            if not done:
                time.sleep(poll_seconds)
                continue
            for job, rid in done:
                lost += _collect_job(job, rid, results)
                bar.update(1)
            running = [(job, rid) for job, rid in running if (job, rid) not in done]
    except BaseException:
        for job, _ in running:
            job.cancel(check=False)
        raise
    return results, lost
