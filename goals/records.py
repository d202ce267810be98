"""Run records on disk: one JSON file per run, keyed by a hash of its configuration.

Layout under a sweep's output folder::

    <out>/records/<run_id>.json

``run_id`` is the first 12 hex digits of the SHA-256 of the run's complete configuration
(defaults filled in by :func:`goals.runs.validate_config`) as canonical JSON: keys sorted, no
spaces. The fields of :data:`goals.runs.UNHASHED_FIELDS` (``data_root``, ``download``) are left
out, because they say where the data lives, not what is computed; a sweep moved to another machine
with its data elsewhere still recognises its finished runs.

A record is written to a temporary file in the same folder (``.<run_id>.json.<pid>.tmp``),
flushed to disk and renamed over the final name with :func:`os.replace`, which is atomic: a reader
sees either no record or a complete one. Only ``*.json`` files count, and only when they parse and
name their own run id, so a leftover temporary file or a truncated file is never taken as a
finished run (the run is simply done again).

:func:`load_records` turns all records of a folder into tidy pandas frames (``runs``, ``evals``,
``trace``); failed and diverged runs are included with their ``status``, never dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from goals.labels import DIRECTIONS, STRATEGIES

logger = logging.getLogger(__name__)

#: Sub-folder of an output folder that holds the records.
RECORDS_DIR = "records"

#: Leftover temporary files older than this many seconds are removed by :func:`clean_stale`.
STALE_SECONDS = 600.0

#: Columns identifying a run, first in every frame.
KEY_COLUMNS: tuple[str, ...] = ("run_id", "dataset", "model", "direction", "strategy", "seed")

#: Columns of the ``runs`` frame, in order (more configuration columns follow).
RUN_COLUMNS: tuple[str, ...] = KEY_COLUMNS + (
    "status", "final_train_loss", "final_train_error", "final_test_loss", "final_test_error",
    "fe", "iterations", "wall_time", "error",
)

#: Columns of the ``evals`` frame.
EVAL_COLUMNS: tuple[str, ...] = KEY_COLUMNS + (
    "fe", "iteration", "train_loss", "train_error", "test_loss", "test_error",
)

#: Columns of the ``trace`` frame.
TRACE_COLUMNS: tuple[str, ...] = KEY_COLUMNS + (
    "iteration", "fe", "loss", "step_size", "evaluations", "forward_evaluations", "growths",
    "refinements", "criterion_met", "fallback",
)

#: Extra configuration and timing columns appended to ``runs``.
EXTRA_RUN_COLUMNS: tuple[str, ...] = (
    "forward_fe", "train_time", "eval_time", "budget_fe", "batch_size", "width", "subset",
    "device", "threads", "mbss",
)


def canonical_json(config: dict[str, Any]) -> str:
    """Canonical JSON text of a configuration: sorted keys, no spaces."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_id(config: dict[str, Any]) -> str:
    """Short hash identifying a run's configuration.

    Args:
        config: a run configuration; it is completed and checked first, so a partial
            configuration and its completed form share one id.

    Raises:
        goals.runs.ConfigError: invalid configuration.
    """
    from goals.runs import UNHASHED_FIELDS, validate_config

    complete = validate_config(config)
    hashed = {key: value for key, value in complete.items() if key not in UNHASHED_FIELDS}
    return hashlib.sha256(canonical_json(hashed).encode()).hexdigest()[:12]


def records_dir(out_dir: str | os.PathLike) -> Path:
    """The folder holding the records of ``out_dir``."""
    return Path(out_dir) / RECORDS_DIR


def record_path(out_dir: str | os.PathLike, run: str) -> Path:
    """Path of the record of run id ``run`` under ``out_dir``."""
    return records_dir(out_dir) / f"{run}.json"


def write_record(record: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write a record atomically and return its path.

    Args:
        record: a record from :func:`goals.runs.run_one` (must hold ``run_id``).
        out_dir: the sweep's output folder.
    """
    folder = records_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    final = record_path(out_dir, record["run_id"])
    tmp = folder / f".{record['run_id']}.json.{os.getpid()}.tmp"
    text = json.dumps(record, indent=1, allow_nan=False)
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def read_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """Read one record; ``None`` (with a warning) when it is incomplete or not a record."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable record %s (%s)", path, error)
        return None
    if not isinstance(record, dict) or record.get("run_id") != path.stem or \
            "status" not in record or "config" not in record:
        logger.warning("ignoring %s: not a complete run record", path)
        return None
    return record


def finished_runs(out_dir: str | os.PathLike) -> dict[str, str]:
    """Run ids with a complete record under ``out_dir``, mapped to their status."""
    finished = {}
    for path in sorted(records_dir(out_dir).glob("*.json")):
        record = read_record(path)
        if record is not None:
            finished[record["run_id"]] = record["status"]
    return finished


def clean_stale(out_dir: str | os.PathLike, older_than: float = STALE_SECONDS) -> int:
    """Remove temporary record files left by killed writers; return how many were removed.

    Only files older than ``older_than`` seconds go, so a writer still running is not disturbed.
    """
    removed = 0
    now = time.time()
    for path in records_dir(out_dir).glob(".*.tmp"):
        try:
            if now - path.stat().st_mtime > older_than:
                path.unlink()
                removed += 1
        except OSError:
            continue
    if removed:
        logger.info("removed %d stale temporary record file(s) in %s", removed,
                    records_dir(out_dir))
    return removed


def load_records(out_dir: str | os.PathLike, trace: bool = True) -> dict[str, pd.DataFrame]:
    """All complete records of ``out_dir`` as tidy frames.

    Args:
        out_dir: a sweep's output folder (the one holding ``records/``).
        trace: also build the (large) per-iteration ``trace`` frame.

    Returns:
        ``{"runs": ..., "evals": ..., "trace": ...}``: one row per run (columns
        :data:`RUN_COLUMNS` then :data:`EXTRA_RUN_COLUMNS`), per evaluation
        (:data:`EVAL_COLUMNS`) and per recorded iteration (:data:`TRACE_COLUMNS`). Failed and
        diverged runs are rows with their ``status`` and missing (NaN) metrics. Rows are ordered
        by dataset, model, direction and strategy (both in :mod:`goals.labels` order) and seed.
        Errors are fractions in [0, 1].
    """
    runs, evals, traces = [], [], []
    for path in sorted(records_dir(out_dir).glob("*.json")):
        record = read_record(path)
        if record is None:
            continue
        config = record["config"]
        key = {"run_id": record["run_id"], **{name: config.get(name) for name in KEY_COLUMNS[1:]}}
        final = record.get("final") or {}
        runs.append({
            **key,
            "status": record["status"],
            **{f"final_{name}": final.get(name) for name in
               ("train_loss", "train_error", "test_loss", "test_error")},
            "fe": record.get("fe"),
            "iterations": record.get("iterations"),
            "wall_time": record.get("wall_time"),
            "error": record.get("error"),
            "forward_fe": record.get("forward_fe"),
            "train_time": record.get("train_time"),
            "eval_time": record.get("eval_time"),
            **{name: config.get(name) for name in EXTRA_RUN_COLUMNS[3:]},
        })
        evals.append(_columns_frame(record.get("evals") or {}, key, EVAL_COLUMNS))
        if trace:
            traces.append(_columns_frame(record.get("trace") or {}, key, TRACE_COLUMNS))

    frames = {
        "runs": _order(pd.DataFrame(runs, columns=list(RUN_COLUMNS + EXTRA_RUN_COLUMNS))),
        "evals": _order(_concat(evals, EVAL_COLUMNS), "fe"),
        "trace": _order(_concat(traces, TRACE_COLUMNS), "iteration"),
    }
    for name in ("final_train_loss", "final_train_error", "final_test_loss", "final_test_error",
                 "wall_time", "train_time", "eval_time"):
        frames["runs"][name] = frames["runs"][name].astype(float)
    for name in ("train_loss", "train_error", "test_loss", "test_error"):
        frames["evals"][name] = frames["evals"][name].astype(float)
    for name in ("loss", "step_size"):
        frames["trace"][name] = frames["trace"][name].astype(float)
    frames["trace"]["criterion_met"] = frames["trace"]["criterion_met"].astype("boolean")
    frames["trace"]["fallback"] = frames["trace"]["fallback"].astype("boolean")
    return frames


def _columns_frame(columns: dict[str, list], key: dict[str, Any],
                   order: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame({name: columns.get(name, []) for name in order[len(KEY_COLUMNS):]})
    for position, (name, value) in enumerate(key.items()):
        frame.insert(position, name, [value] * len(frame))
    return frame


def _concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(frames, ignore_index=True)[list(columns)]


def _order(frame: pd.DataFrame, *within: str) -> pd.DataFrame:
    if frame.empty:
        return frame.reset_index(drop=True)
    strategy_rank = {name: index for index, name in enumerate(STRATEGIES)}
    direction_rank = {name: index for index, name in enumerate(DIRECTIONS)}
    frame = frame.assign(_strategy=frame["strategy"].map(strategy_rank),
                         _direction=frame["direction"].map(direction_rank))
    keys = ["dataset", "model", "_direction", "_strategy", "seed", "run_id", *within]
    frame = frame.sort_values(keys, kind="stable").drop(columns=["_strategy", "_direction"])
    return frame.reset_index(drop=True)
