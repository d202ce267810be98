"""One training run of the comparison: :func:`run_one` turns a configuration into a record.

A configuration is a flat mapping of the fields in :data:`CONFIG_FIELDS` (missing fields take
their defaults) plus an ``optimizer`` mapping of overrides (see :mod:`goals.strategies`). The run:

1. validates every field (:func:`validate_config`; unknown names and wrong types raise
   :class:`ConfigError` naming the field, before any work);
2. seeds Python's ``random``, numpy and torch with ``seed`` and sets torch's thread count to
   ``threads`` (restored afterwards);
3. loads the data set onto ``device`` (:func:`goals.data.load_dataset`), builds the model after
   seeding (so every strategy of one seed starts from the same weights) and the strategy;
4. draws batches with :class:`goals.BatchSampler` (its own generator, seeded with ``seed``:
   every strategy of one seed sees the same batch sequence) through :func:`goals.make_closure`;
5. iterates until the closure has made ``budget_fe`` function evaluations (FEs: forward and
   backward pass on a fresh batch). FEs are counted by the closure for every strategy alike. A
   line search may overshoot the budget by the FEs of its last iteration; the record keeps the
   exact count. Forward-only evaluations (SLS-Armijo's loss checks) are counted separately in
   ``forward_fe`` and do **not** enter the budget [ours: they cost roughly a third of an FE];
6. evaluates, at FE 0, then each time the FE count passes a multiple of ``eval_every``, and at
   the end: loss and error on a fixed, class-balanced subset of ``eval_size`` training examples
   (no augmentation, evaluation mode) and on the test set. These passes are not FEs;
7. returns a record (:mod:`goals.records` stores it).

Status: ``"ok"``; ``"diverged"`` when a training loss or a final evaluation loss is not finite
(the run stops at once); ``"failed"`` when the run raised (the error text and traceback are kept)
or made no FE in :data:`MAX_IDLE_ITERATIONS` iterations in a row. A failed or diverged run returns
its record: :func:`run_one` only raises for an invalid configuration (or ``KeyboardInterrupt``).

Wall time covers everything after validation; ``eval_time`` is the part spent evaluating and
``train_time`` the rest.
"""

from __future__ import annotations

import datetime
import functools
import logging
import math
import os
import platform
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import goals
from goals.data import DATASETS, Dataset, balanced_subset, load_dataset
from goals.labels import DIRECTIONS, STRATEGIES
from goals.models import MODELS, build_model
from goals.paths import git_state, repo_relative, repo_root
from goals.strategies import STRATEGY_SPECS, build_strategy, validate_overrides

logger = logging.getLogger(__name__)

#: Version of the record layout; bump when fields change meaning.
RECORD_SCHEMA = 1

#: A run stops as failed after this many consecutive iterations without an FE.
MAX_IDLE_ITERATIONS = 20

#: Evaluation metrics, in record order.
METRICS: tuple[str, ...] = ("train_loss", "train_error", "test_loss", "test_error")

#: Trace columns, one value per recorded iteration.
TRACE_FIELDS: tuple[str, ...] = (
    "iteration", "fe", "loss", "step_size", "evaluations", "forward_evaluations", "growths",
    "refinements", "criterion_met", "fallback",
)


class ConfigError(ValueError):
    """A run configuration names an unknown field or has a value of the wrong type or range."""


@dataclass(frozen=True)
class Field:
    """One configuration field.

    Attributes:
        types: accepted Python types (``int`` is accepted where ``float`` is, and converted).
        default: value when the field is missing.
        help: what the field means.
        choices: allowed values, if the field is an enumeration.
        minimum: smallest allowed value for numbers.
        nullable: whether ``None`` is allowed.
    """

    types: tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    nullable: bool = False


#: Every configuration field, its type, default and meaning.
CONFIG_FIELDS: dict[str, Field] = {
    "dataset": Field((str,), "digits", "data set name", choices=DATASETS),
    "model": Field((str,), "mlp", "model name", choices=MODELS),
    "direction": Field((str,), "sgd", "search direction", choices=DIRECTIONS),
    "strategy": Field((str,), "goals", "learning-rate strategy", choices=STRATEGIES),
    "seed": Field((int,), 0, "seed of initialisation, batches and augmentation", minimum=0),
    "budget_fe": Field((int,), 1000, "function evaluations (forward+backward) to train for",
                       minimum=1),
    "batch_size": Field((int,), 128, "examples per mini-batch", minimum=1),
    "eval_every": Field((int,), 200, "evaluate each time the FE count passes a multiple of this",
                        minimum=1),
    "eval_size": Field((int,), 1000, "training examples in the fixed evaluation subset",
                       minimum=1),
    "eval_batch_size": Field((int,), 1000, "examples per evaluation forward pass", minimum=1),
    "trace_every": Field((int,), 1, "keep every n-th iteration in the trace", minimum=1),
    "device": Field((str,), "cpu", "torch device: cpu, cuda, cuda:N, mps"),
    "data_root": Field((str,), None, "data folder (null: GOALS_DATA_ROOT or <repo>/data)",
                       nullable=True),
    "download": Field((bool,), False, "let torchvision download CIFAR if missing"),
    "subset": Field((int,), None, "training examples to keep (null: all)", minimum=1,
                    nullable=True),
    "test_subset": Field((int,), None, "test examples to keep (null: all)", minimum=1,
                         nullable=True),
    "width": Field((float,), 1.0, "model channel multiplier", minimum=1e-6),
    "threads": Field((int,), 1, "torch CPU threads (null: leave as is)", minimum=1,
                     nullable=True),
    "mbss": Field((str,), "auto", "closure policy: auto (the strategy's own), dynamic, static",
                  choices=("auto", "dynamic", "static")),
    "optimizer": Field((dict,), None, "optimizer and schedule overrides", nullable=True),
}

#: Fields left out of the run id: they say where the data lives, not what is computed.
UNHASHED_FIELDS: tuple[str, ...] = ("data_root", "download")


def default_config() -> dict[str, Any]:
    """A complete configuration with every field at its default."""
    config = {name: field.default for name, field in CONFIG_FIELDS.items()}
    config["optimizer"] = {}
    return config


def validate_config(config: dict[str, Any], check_data: bool = False,
                    check_device: bool = False) -> dict[str, Any]:
    """Check a configuration and return it complete and normalised.

    Args:
        config: the fields to set; missing ones take their defaults.
        check_data: also check that the data set can be found (:func:`goals.data.check_dataset`).
        check_device: also check that ``device`` exists on this machine (:func:`check_device`).
            Off by default, so configurations made for another machine (a GPU profile read on a
            laptop) still validate and hash to their run ids.

    Returns:
        A new dict with every field of :data:`CONFIG_FIELDS`, ints turned into floats where
        floats are due, and ``optimizer`` a (possibly empty) dict.

    Raises:
        ConfigError: the first problem found, naming the field.
        goals.data.DataNotFoundError: with ``check_data``, when the data is missing.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"a run configuration must be a mapping, got {type(config).__name__}")
    unknown = sorted(set(config) - set(CONFIG_FIELDS))
    if unknown:
        raise ConfigError(f"unknown configuration field {unknown[0]!r}; known fields: "
                          f"{', '.join(CONFIG_FIELDS)}")

    normalised = default_config()
    for name, value in config.items():
        if name == "data_root" and isinstance(value, os.PathLike):
            value = os.fspath(value)
        normalised[name] = _check_field(name, CONFIG_FIELDS[name], value)
    normalised["optimizer"] = dict(normalised["optimizer"] or {})
    for key, value in normalised["optimizer"].items():
        if not isinstance(key, str):
            raise ConfigError(f"optimizer: option names must be strings, got {key!r}")
        _reject_numeric_string(f"optimizer.{key}", value)

    mbss, spec = normalised["mbss"], STRATEGY_SPECS[normalised["strategy"]]
    if mbss == "static" and not spec.is_line_search:
        raise ConfigError(f"mbss: 'static' needs a line-search strategy; {spec.name!r} draws a "
                          f"fresh batch per FE (use 'auto' or 'dynamic')")
    if mbss == "dynamic" and spec.mbss == "static":
        raise ConfigError(f"mbss: {spec.name!r} compares function values on one batch per step "
                          f"and needs 'static' (or 'auto')")
    try:
        validate_overrides(normalised["strategy"], normalised["direction"],
                           normalised["optimizer"], normalised["budget_fe"])
    except ValueError as error:
        raise ConfigError(str(error)) from error
    _check_device(normalised["device"])
    if check_device:
        check_device_available(normalised["device"])
    if normalised["subset"] is not None and normalised["batch_size"] > normalised["subset"]:
        raise ConfigError(f"batch_size: {normalised['batch_size']} is larger than subset "
                          f"{normalised['subset']}")

    if check_data:
        from goals.data import check_dataset

        check_dataset(normalised["dataset"], normalised["data_root"], normalised["download"])
    return normalised


def _check_field(name: str, field: Field, value: Any) -> Any:
    if value is None:
        if field.nullable:
            return None
        raise ConfigError(f"{name}: must not be null (expected {_type_names(field)})")
    if name not in _PATH_FIELDS:
        _reject_numeric_string(name, value)
    if float in field.types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    bool_mismatch = isinstance(value, bool) and bool not in field.types
    if bool_mismatch or not isinstance(value, field.types):
        raise ConfigError(f"{name}: expected {_type_names(field)}, got {value!r} "
                          f"({type(value).__name__})")
    if field.choices is not None and value not in field.choices:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(map(str, field.choices))}")
    if field.minimum is not None and not value >= field.minimum:
        raise ConfigError(f"{name}: must be >= {field.minimum:g}, got {value!r}")
    return value


#: Fields holding paths, where a name made of digits is a legitimate string.
_PATH_FIELDS: tuple[str, ...] = ("data_root",)


def _reject_numeric_string(name: str, value: Any) -> None:
    # PyYAML follows YAML 1.1, which reads 1e-3 (no dot in the mantissa) as a string; a quoted
    # "0.5" is a string too. Either is a number the user meant to write.
    if not isinstance(value, str):
        return
    try:
        float(value)
    except ValueError:
        return
    raise ConfigError(f"{name}: {value!r} is a string, not a number (YAML reads 1e-3 as a "
                      f"string); write 1.0e-3 or a plain number, unquoted")


def _type_names(field: Field) -> str:
    names = " or ".join(kind.__name__ for kind in field.types)
    return f"{names} or null" if field.nullable else names


def _check_device(device: str) -> None:
    try:
        parsed = torch.device(device)
    except RuntimeError as error:
        raise ConfigError(f"device: {device!r} is not a torch device ({error})") from error
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device: {device!r}; expected cpu, cuda, cuda:N or mps")


def check_device_available(device: str) -> None:
    """Check that a torch device string names a device this machine has.

    Raises:
        ConfigError: naming the ``device`` field and what to write instead.
    """
    parsed = torch.device(device)
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {device!r}, but this machine has no CUDA device; use "
                              f"device: cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ConfigError(f"device: {device!r}, but this machine has {count} CUDA "
                              f"device(s) (cuda:0 to cuda:{count - 1}); use device: cuda")
    elif parsed.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"device: {device!r}, but this machine has no MPS device; use "
                              f"device: cpu")


# --- the run ------------------------------------------------------------------------------------

_DATA_CACHE: dict[tuple, Dataset] = {}


def _dataset_for(config: dict[str, Any]) -> Dataset:
    # Consecutive runs of a sweep share one problem's data: keep the last data set loaded.
    key = (config["dataset"], config["data_root"], config["subset"], config["test_subset"],
           config["device"], config["download"])
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_dataset(config["dataset"], root=config["data_root"],
                                        subset=config["subset"], device=config["device"],
                                        download=config["download"],
                                        test_subset=config["test_subset"])
    return _DATA_CACHE[key]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
             batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and error (fraction misclassified) of ``model`` in evaluation mode.

    The model is put back into training mode afterwards.
    """
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=inputs.device)
    wrong = torch.zeros((), dtype=torch.int64, device=inputs.device)
    for start in range(0, len(inputs), batch_size):
        x, y = inputs[start:start + batch_size], targets[start:start + batch_size]
        logits = model(x).float()
        total_loss += F.cross_entropy(logits, y, reduction="sum").double()
        wrong += (logits.argmax(dim=1) != y).sum()
    model.train()
    loss, errors = torch.stack([total_loss, wrong.double()]).tolist()
    return loss / len(inputs), errors / len(inputs)


def run_one(config: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration to its FE budget and return its record.

    Args:
        config: run configuration (see :data:`CONFIG_FIELDS`).

    Returns:
        The record: ``run_id``, ``config`` (complete), ``status``, ``error``, ``fe``,
        ``forward_fe``, ``iterations``, ``wall_time``, ``train_time``, ``eval_time``, ``final``
        (the metrics of the last evaluation), ``evals`` and ``trace`` (columns as lists),
        ``provenance``. Non-finite floats are stored as ``None``.

    Raises:
        ConfigError: invalid configuration (nothing has run).
    """
    from goals.records import run_id as make_run_id

    config = validate_config(config)
    record: dict[str, Any] = {
        "schema": RECORD_SCHEMA,
        "run_id": make_run_id(config),
        "config": config,
        "status": "ok",
        "error": None,
        "started_at": _now(),
    }
    state = _RunState()
    threads_before = torch.get_num_threads()
    started = time.perf_counter()
    try:
        if config["threads"] is not None:
            torch.set_num_threads(config["threads"])
        _train(config, state)
        record["status"] = state.status
        record["error"] = state.error
    except Exception as error:  # any failure becomes a record; the caller goes on
        record["status"] = "failed"
        record["error"] = f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=6)}"
        logger.warning("run %s failed: %s: %s", record["run_id"], type(error).__name__, error)
    finally:
        torch.set_num_threads(threads_before)
    wall_time = time.perf_counter() - started
    last = state.evals_rows[-1][2:] if state.evals_rows else (None,) * len(METRICS)

    record.update(
        finished_at=_now(),
        fe=state.fe,
        forward_fe=state.forward_fe,
        iterations=state.iteration,
        wall_time=wall_time,
        eval_time=state.eval_time,
        train_time=wall_time - state.eval_time,
        final=dict(zip(METRICS, last)),
        evals={name: [row[i] for row in state.evals_rows]
               for i, name in enumerate(("fe", "iteration", *METRICS))},
        trace=state.trace,
        provenance=_provenance(config, state),
    )
    return _finite_or_none(record)


class _RunState:
    """What a run has done so far; survives an exception, so failure records keep it."""

    def __init__(self) -> None:
        self.status, self.error = "ok", None
        self.fe = self.forward_fe = self.iteration = 0
        self.eval_time = 0.0
        self.evals_rows: list[tuple] = []
        self.trace: dict[str, list] = {name: [] for name in TRACE_FIELDS}
        self.data_source: str | None = None
        self.parameters: int | None = None


def _train(config: dict[str, Any], state: _RunState) -> None:
    seed_everything(config["seed"])
    device = torch.device(config["device"])
    data = _dataset_for(config)
    state.data_source = data.source

    torch.manual_seed(config["seed"])
    model = build_model(config["model"], data.num_classes, data.in_channels, data.image_size,
                        width=config["width"]).to(device)
    model.train()
    state.parameters = sum(p.numel() for p in model.parameters())

    overrides = dict(config["optimizer"])
    spec = STRATEGY_SPECS[config["strategy"]]
    if spec.is_line_search:
        overrides["running_stats"] = goals.running_stat_buffers(model)
    strategy = build_strategy(config["strategy"], config["direction"], model.parameters(),
                              config["budget_fe"], **overrides)
    if config["mbss"] != "auto":
        strategy.mbss = config["mbss"]

    sampler = goals.BatchSampler(data.train_inputs, data.train_targets, config["batch_size"],
                                 seed=config["seed"], transform=data.augment)
    closure = goals.make_closure(model, F.cross_entropy, sampler, mbss=strategy.mbss)

    eval_index = torch.as_tensor(
        balanced_subset(data.train_targets.cpu().numpy(), config["eval_size"]),
        device=data.train_targets.device,
    )
    eval_sets = (data.train_inputs[eval_index], data.train_targets[eval_index],
                 data.test_inputs, data.test_targets)
    evaluate_now = functools.partial(_evaluate_into, state, model, eval_sets,
                                     config["eval_batch_size"])

    evaluate_now()
    _loop(config, state, strategy, closure, evaluate_now)
    if not state.evals_rows or state.evals_rows[-1][0] != state.fe or \
            state.evals_rows[-1][1] != state.iteration:
        evaluate_now()
    final = state.evals_rows[-1]
    if state.status == "ok" and not all(math.isfinite(value) for value in final[2:]):
        state.status = "diverged"
        state.error = "final evaluation is not finite"


def _loop(config: dict[str, Any], state: _RunState, strategy, closure,
          evaluate_now: Callable[[], None]) -> None:
    budget, eval_every, trace_every = config["budget_fe"], config["eval_every"], \
        config["trace_every"]
    next_eval = eval_every
    idle = 0
    while closure.evaluations < budget:
        fe_before, forward_before = closure.evaluations, closure.forward_evaluations
        info = strategy.step(closure)
        state.iteration += 1
        state.fe, state.forward_fe = closure.evaluations, closure.forward_evaluations
        evaluations = state.fe - fe_before
        forward_evaluations = state.forward_fe - forward_before
        finite = math.isfinite(info["loss"])

        if state.iteration % trace_every == 0 or not finite:
            row = dict(info, iteration=state.iteration, fe=state.fe, evaluations=evaluations,
                       forward_evaluations=forward_evaluations)
            for name in TRACE_FIELDS:
                state.trace[name].append(row[name])

        # A non-finite training loss: the run diverged; stop here.
        if not finite:
            state.status, state.error = "diverged", f"training loss {info['loss']} at FE " \
                                                    f"{state.fe}"
            return
        # No FE spent (for example a zero gradient): stop if it keeps happening.
        idle = idle + 1 if evaluations == 0 and forward_evaluations == 0 else 0
        if idle >= MAX_IDLE_ITERATIONS:
            state.status = "failed"
            state.error = (f"no function evaluation in {idle} consecutive iterations at FE "
                           f"{state.fe} (zero gradient?)")
            return
        if state.fe >= next_eval and state.fe < budget:
            evaluate_now()
            next_eval = (state.fe // eval_every + 1) * eval_every


def _evaluate_into(state: _RunState, model: torch.nn.Module, eval_sets: tuple,
                   batch_size: int) -> None:
    started = time.perf_counter()
    train_x, train_y, test_x, test_y = eval_sets
    train_loss, train_error = evaluate(model, train_x, train_y, batch_size)
    test_loss, test_error = evaluate(model, test_x, test_y, batch_size)
    state.evals_rows.append((state.fe, state.iteration, train_loss, train_error, test_loss,
                             test_error))
    state.eval_time += time.perf_counter() - started
    logger.debug("FE %d: train loss %.4g error %.3f, test loss %.4g error %.3f", state.fe,
                 train_loss, train_error, test_loss, test_error)


# --- provenance ---------------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def git_commit() -> dict[str, Any]:
    """Commit of the repository the package runs from, and whether the tree had changes.

    Changes under ``figures/`` and ``runs/`` (rewritten by the reproduction itself) and untracked
    files do not count (:func:`goals.paths.git_state`). Returns ``{"commit": None, "dirty": None}``
    when git or the repository is not available.
    """
    commit, dirty = git_state(repo_root())
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict[str, str | None]:
    """Versions of Python and of the packages a run depends on (``None``: not installed)."""
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("goals-companion", "torch", "torchvision", "timm", "numpy", "scikit-learn",
                 "pandas"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _provenance(config: dict[str, Any], state: _RunState) -> dict[str, Any]:
    device = torch.device(config["device"])
    device_name = platform.processor() or platform.machine()
    if device.type == "cuda" and torch.cuda.is_available():
        device_name = torch.cuda.get_device_name(device)
    return {
        "versions": package_versions(),
        "git": git_commit(),
        "device": str(device),
        "device_name": device_name,
        "threads": config["threads"] if config["threads"] is not None else
        torch.get_num_threads(),
        "host": platform.node(),
        "platform": platform.platform(),
        "argv": list(sys.argv),
        "data_source": None if state.data_source is None else _portable(state.data_source),
        "parameters": state.parameters,
        "fe_definition": "forward+backward pass on one fresh mini-batch; forward-only "
                         "evaluations counted in forward_fe, outside the budget",
    }


def _portable(source: str) -> str:
    # A data folder inside the repository is recorded relative to its root.
    return repo_relative(source) if os.path.isabs(source) else source


def _finite_or_none(value: Any) -> Any:
    # Strict JSON has no NaN or Infinity: store them as null (the status says what happened).
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value
