"""Relative robust criterion, rankings and performance profiles of learning-rate strategies.

The paper ranks strategies by how far each falls from the best one on each problem. With
problems ``s`` (dataset x model x direction), strategies ``a`` and a metric ``f(a, s)`` where lower
is better, aggregated over seeds by the median (EXPERIMENTS.md, last section):

- best on ``s``: ``f*(s) = min_a f(a, s)``;
- relative deviation: ``RD(a, s) = (f(a, s) - f*(s)) / f*(s)``, zero for the best;
- relative robust criterion: ``R(a) = max_s RD(a, s)``, strategies ranked by ascending ``R``;
- mean relative deviation ``mean_s RD(a, s)``, number of problems on which ``a`` is best;
- AlgoPerf-style performance profile ``rho_a(tau) = share of s with f(a, s) / f*(s) <= tau``.

The two metrics of the paper are the final training loss (``final_train_loss``, "train") and the
final test error (``final_test_error``, "test").

Rules (each one has a hand-computed test in ``tests/test_robust.py``)
-----------------------------------------------------------------------

1. **Seeds and run status.** Each run contributes one value per metric. A run with status
   ``"failed"`` (it raised, or stalled; its metric means nothing) is by default left out of the
   median and counted in ``n_failed``, which the ranking reports per strategy so that failures
   stay visible; pass ``failed="diverged"`` to count failed runs as diverged instead (the
   stricter reading when a failure may come from the strategy itself, e.g. a search that stalls).
   A run with status ``"diverged"``, or whose metric is non-finite (NaN or inf), counts as
   ``+inf``: a diverged run is the worst possible outcome, whatever number the engine may have
   recorded after divergence (NaN weights can still give a finite test error).
2. **Median over seeds** includes those ``+inf`` values: it is the usual median with
   ``a + t (inf - a) = inf`` for ``t > 0``. So a strategy is *diverged* on a problem (median
   ``inf``) when more than half of its seeds diverged (odd count) or when at least half did (even
   count: the upper middle value is ``inf``). The spread (``min``, ``q25``, ``q75``, ``max``,
   ``iqr``) follows the same arithmetic; ``std_finite`` is the standard deviation of the finite
   values only.
3. **Best value of zero.** ``RD`` divides by ``max(f*(s), zero_floor)`` (default
   :data:`ZERO_FLOOR` = 1e-6): identical to the paper's formula whenever ``f* >= zero_floor``, and
   finite when the best value is 0 (e.g. a test error of 0). Such problems are marked
   ``floored``. The profile ratio is ``f / f*`` when not floored and ``1 + RD`` when floored, so the
   best strategy always has ratio 1. Negative metric values are rejected (``ValueError``): a
   relative deviation needs ``f >= 0``.
4. **Diverged strategy.** A strategy whose median is ``inf`` on a problem with a finite best gets
   ``RD = inf`` there, hence ``R = inf`` and ``mean_rd = inf``, written ``diverged`` in the
   tables. It ranks after every strategy with a finite ``R``.
5. **Missing runs.** A strategy with no usable run on a problem (no rows, or only failed runs) has
   ``f = NaN`` and ``RD = NaN`` there; it does not enter ``f*``. Its ``R`` and ``mean_rd`` are
   ``NaN`` ("missing": the worst case is unknown) unless it also diverged somewhere, in which case
   they are ``inf`` (the worst case is known). ``n_missing`` counts those problems. A strategy with
   ``R = NaN`` ranks last, after the diverged ones: a missing run never makes a strategy look good.
   In the performance profile a missing problem counts as not solved at any ``tau``.
6. **Ties.** A strategy is best on a problem when its median equals ``f*`` exactly; all tied
   strategies are best and each counts in ``n_best``. Equal ``R`` share a rank (pandas
   ``method="min"``: ranks 1, 1, 3); strategies with ``R = inf`` share one rank, and so do those
   with ``R = NaN``.
7. **Every strategy diverged (or missing) on a problem.** Then ``f*`` is not finite and no strategy
   can be compared there: the problem is dropped from ``R``, ``mean_rd``, ``n_best`` and the
   profile, a warning is logged, and it is listed by :func:`dropped_problems` (and in
   ``robustness_report``'s ``dropped_*`` tables) with the reason.

8. **Nothing to rank.** When no problem is left after rule 7 (every run failed or diverged, or
   there are no runs), no ranking is published: :func:`robust_ranking`, :func:`rank_strategies`
   and :func:`robustness_report` raise :class:`NoUsableRunsError`, whose message says how many runs
   failed and diverged and quotes the first error of the runs frame's ``error`` column (see
   :func:`failure_summary`). A table with every strategy at rank 1 on zero problems would look
   like a real result. ``n_failed`` in a ranking counts the strategy's failed runs on every
   problem of the comparison, the dropped ones included, so failures stay visible even when a
   problem could not be compared. Within :func:`rank_by_direction`, a direction with nothing to
   rank is left out with a warning.

Per search direction, the same criterion is computed within each direction's problems
(:func:`rank_by_direction`): the paper's "recommended learning rate for a class of search
directions" finding.

Per-seed view: :func:`per_seed_values` keeps every seed, :func:`plot_per_seed` shows them, and
:func:`detect_modes` flags a strategy whose seeds split into separated groups (see its docstring for
the rule).

Usage::

    tables = robustness_report(runs, "figures/quick/robustness")   # writes tables and figures
    print(describe_rank(tables["ranking_train"], "goals"))
    print(describe_directions(tables["ranking_by_direction_test"]))
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

from goals.labels import DIRECTION_LABELS, STRATEGIES, STRATEGY_LABELS
from goals.tables import provenance, write_table

logger = logging.getLogger(__name__)

#: A problem: the columns that identify it in the run records.
PROBLEM: tuple[str, ...] = ("dataset", "model", "direction")
#: The paper's training metric and test metric.
TRAIN_METRIC = "final_train_loss"
TEST_METRIC = "final_test_error"
#: Short names used in file names and keys of :func:`robustness_report`.
METRIC_KEYS: dict[str, str] = {TRAIN_METRIC: "train", TEST_METRIC: "test"}
METRIC_LABELS: dict[str, str] = {
    TRAIN_METRIC: "final training loss",
    TEST_METRIC: "final test error",
    "final_train_error": "final training error",
    "final_test_loss": "final test loss",
}
#: Denominator floor of the relative deviation (rule 3).
ZERO_FLOOR = 1e-6


#: Hint appended to :func:`failure_summary` by default: how to get usable runs.
RETRY_HINT = ("Fix the cause, then rerun notebook 02_optimizer_comparison (or the sweep) with "
              "retry_failed=True.")


class NoUsableRunsError(ValueError):
    """No problem is left to compare strategies on: every run failed or diverged, or none exist.

    Raised instead of publishing a ranking (or figures) built from no data (rule 8).
    """


# --------------------------------------------------------------------------------------------
# Run status: failed runs and why
# --------------------------------------------------------------------------------------------


def _first_line(text: Any, width: int = 200) -> str:
    """First non-empty line of an error text, cut to ``width`` characters."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= width else f"{line[: width - 3]}..."


def failed_run_table(runs: pd.DataFrame, statuses: Sequence[str] = ("failed", "diverged"),
                     *, width: int = 120) -> pd.DataFrame:
    """Compact table of the runs whose status is in ``statuses``, with the first error line.

    Args:
        runs: tidy run records with ``status`` and, optionally, ``error``.
        statuses: statuses to list.
        width: the error text is cut to this many characters.

    Returns:
        Columns ``dataset, model, direction, strategy, seed, status, error`` (those present in
        ``runs``), one row per listed run, in the order of ``runs``.
    """
    _check_columns(runs, ["status"], "runs")
    columns = [c for c in ("dataset", "model", "direction", "strategy", "seed", "status")
               if c in runs.columns]
    chosen = runs[runs["status"].astype(str).str.lower().isin(list(statuses))]
    out = chosen[columns].copy()
    errors = chosen["error"] if "error" in chosen.columns else pd.Series("", index=chosen.index)
    out["error"] = [_first_line(e, width) for e in errors]
    return out.reset_index(drop=True)


def failure_summary(runs: pd.DataFrame, *, hint: str | None = RETRY_HINT) -> str:
    """One paragraph on why nothing is usable: counts by status and the first error text.

    Args:
        runs: tidy run records with ``status`` and, optionally, ``error`` and ``run_id``.
        hint: sentence appended at the end (default :data:`RETRY_HINT`); ``None`` for none. Not
            used when ``runs`` is empty: the message then says to run the sweep.

    Returns:
        E.g. ``"6 of 6 runs failed and 0 diverged. First error (run r1, goals, seed 0):
        ValueError: corrupt image. Fix the cause, ..."``.
    """
    if runs.empty:
        return "No run is recorded: run the sweep (notebook 02_optimizer_comparison) first."
    else:
        _check_columns(runs, ["status"], "runs")
        status = runs["status"].astype(str).str.lower()
        n_failed, n_diverged = int((status == "failed").sum()), int((status == "diverged").sum())
        text = f"{n_failed} of {len(runs)} runs failed and {n_diverged} diverged."
        if "error" in runs.columns:
            has_error = runs["error"].map(lambda e: bool(_first_line(e)))
            if has_error.any():
                first = runs[has_error].iloc[0]
                where = ", ".join(f"{first[c]}" if c != "seed" else f"seed {first[c]}"
                                  for c in ("run_id", "strategy", "direction", "seed")
                                  if c in runs.columns)
                line = _first_line(first["error"])
                text += f" First error (run {where}): {line}"
                text += "" if line.endswith((".", "!", "?")) else "."
            elif n_failed:
                text += " The records hold no error text."
    return f"{text} {hint}" if hint else text


def require_evaluations(runs: pd.DataFrame, evals: pd.DataFrame, *,
                        hint: str | None = RETRY_HINT) -> pd.DataFrame:
    """Stop with a clear message when no run has evaluations; else list the failed runs.

    Args:
        runs: tidy run records of the sweep.
        evals: tidy evaluation records of the same runs.
        hint: see :func:`failure_summary`.

    Returns:
        :func:`failed_run_table` of ``runs`` (empty when every run is ``ok``).

    Raises:
        NoUsableRunsError: ``evals`` has no rows, with :func:`failure_summary` as the message.
    """
    if evals.empty:
        raise NoUsableRunsError(
            f"No run has evaluations to plot. {failure_summary(runs, hint=hint)}")
    return failed_run_table(runs)


# --------------------------------------------------------------------------------------------
# Aggregation over seeds
# --------------------------------------------------------------------------------------------


def _check_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [col for col in columns if col not in frame.columns]
    if missing:
        raise KeyError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")


def strategy_order(strategies: Iterable[str]) -> list[str]:
    """Order strategy ids as in :data:`goals.labels.STRATEGIES`, unknown ones after, sorted."""
    present = set(strategies)
    known = [s for s in STRATEGIES if s in present]
    return known + sorted(present - set(known))


def problem_label(values: Sequence[Any]) -> str:
    """``("digits", "mlp", "sgd") -> "digits/mlp/sgd"``."""
    return "/".join(str(v) for v in values)


def per_seed_values(
    runs: pd.DataFrame, metric: str, problem: Sequence[str] = PROBLEM, *, failed: str = "exclude"
) -> pd.DataFrame:
    """One row per run with the value that enters the median (rules 1 and 2).

    Args:
        runs: tidy run records (one row per run) with the ``problem`` columns, ``strategy``,
            ``seed``, optionally ``status`` (``"ok"``, ``"diverged"``, ``"failed"``) and ``metric``.
        metric: column to read, lower is better.
        problem: columns that identify a problem.
        failed: ``"exclude"`` (a failed run's value is NaN, left out of the median) or
            ``"diverged"`` (it is ``+inf``, like a diverged run).

    Returns:
        Columns ``*problem, strategy, seed, status, value``: ``value`` is ``+inf`` for a diverged
        run (status or non-finite metric) and, by default, NaN for a failed run; ``status`` is
        normalised to ``"ok"``, ``"diverged"`` or ``"failed"``.

    Raises:
        KeyError: a required column is absent.
        ValueError: a usable run has a negative metric value.
    """
    if failed not in ("exclude", "diverged"):
        raise ValueError(f"failed must be 'exclude' or 'diverged', got {failed!r}")
    problem = list(problem)
    _check_columns(runs, [*problem, "strategy", "seed", metric], "runs")
    out = runs[[*problem, "strategy", "seed"]].copy()
    raw = pd.to_numeric(runs[metric], errors="coerce").to_numpy(dtype=float)
    status = (
        runs["status"].astype(str).str.lower().to_numpy()
        if "status" in runs.columns
        else np.full(len(runs), "ok", dtype=object)
    )

    failed_runs_excluded = failed == "exclude"
    failed = status == "failed"
    diverged = ~failed & ((status == "diverged") | ~np.isfinite(raw))
    failed_value = np.nan if failed_runs_excluded else np.inf
    value = np.where(failed, failed_value, np.where(diverged, np.inf, raw))
    negative = np.isfinite(value) & (value < 0)
    if negative.any():
        raise ValueError(
            f"{metric} has negative values ({raw[negative][:3].tolist()}); the relative "
            "deviation needs a metric >= 0"
        )

    out["status"] = np.where(failed, "failed", np.where(diverged, "diverged", "ok"))
    out["value"] = value
    duplicated = out.duplicated([*problem, "strategy", "seed"])
    if duplicated.any():
        logger.warning("%d duplicated (problem, strategy, seed) rows in runs; all are used",
                       int(duplicated.sum()))
    return out.reset_index(drop=True)


def _quantile(sorted_values: np.ndarray, q: float) -> float:
    """Linear-interpolation quantile that keeps ``+inf`` (no ``inf - inf`` NaN)."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    position = q * (n - 1)
    low, high = int(math.floor(position)), int(math.ceil(position))
    fraction = position - low
    a, b = float(sorted_values[low]), float(sorted_values[high])
    if fraction == 0.0 or a == b:
        return a
    if math.isinf(b):
        return math.inf
    return a + fraction * (b - a)


def aggregate(
    runs: pd.DataFrame, metric: str, problem: Sequence[str] = PROBLEM, *, failed: str = "exclude"
) -> pd.DataFrame:
    """Median over seeds per problem x strategy, with the spread kept (rules 1 and 2).

    Args:
        runs: tidy run records, see :func:`per_seed_values`.
        metric: column to aggregate, lower is better.
        problem: columns that identify a problem.
        failed: how failed runs enter, see :func:`per_seed_values`.

    Returns:
        One row per problem x strategy present in ``runs``: ``*problem, strategy, median, min,
        q25, q75, max, iqr, std_finite, n_seeds`` (runs in the median), ``n_diverged`` (runs
        counted as ``+inf``), ``n_failed`` (runs with status failed, whichever way they entered).
        All-failed cells have ``n_seeds = 0`` and NaN statistics when failed runs are excluded.
    """
    problem = list(problem)
    if runs.empty:
        raise NoUsableRunsError("runs has no rows: nothing to aggregate")
    values = per_seed_values(runs, metric, problem, failed=failed)
    rows = []
    for key, group in values.groupby([*problem, "strategy"], sort=False, dropna=False):
        used = np.sort(group["value"].dropna().to_numpy(dtype=float))
        finite = used[np.isfinite(used)]
        q25, q75 = _quantile(used, 0.25), _quantile(used, 0.75)
        rows.append({
            **dict(zip([*problem, "strategy"], key)),
            "median": _quantile(used, 0.5),
            "min": float(used[0]) if len(used) else math.nan,
            "q25": q25,
            "q75": q75,
            "max": float(used[-1]) if len(used) else math.nan,
            "iqr": (math.inf if math.isinf(q75) else q75 - q25) if len(used) else math.nan,
            "std_finite": float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan,
            "n_seeds": int(len(used)),
            "n_diverged": int(np.isinf(used).sum()),
            "n_failed": int((group["status"] == "failed").sum()),
        })
    columns = [*problem, "strategy", "median", "min", "q25", "q75", "max", "iqr", "std_finite",
               "n_seeds", "n_diverged", "n_failed"]
    agg = pd.DataFrame(rows, columns=columns)
    agg.attrs["metric"] = metric
    return _sort_problem_strategy(agg, problem)


def _sort_key(column: pd.Series) -> pd.Series:
    """Strategies and directions in the order of ``goals.labels``, other columns as they sort."""
    if column.name == "strategy":
        order = {s: i for i, s in enumerate(strategy_order(column.unique()))}
        return column.map(order)
    if column.name == "direction":
        known = list(DIRECTION_LABELS)
        return column.map(lambda d: (known.index(d), "") if d in known else (len(known), str(d)))
    return column


def _sort_problem_strategy(frame: pd.DataFrame, problem: Sequence[str]) -> pd.DataFrame:
    keys = [*problem, "strategy"]
    out = frame.sort_values(keys, key=_sort_key, kind="stable")
    out = out.reset_index(drop=True)
    out.attrs.update(frame.attrs)
    return out


# --------------------------------------------------------------------------------------------
# Relative deviation, criterion, rankings
# --------------------------------------------------------------------------------------------


def relative_deviations(
    agg: pd.DataFrame,
    problem: Sequence[str] = PROBLEM,
    *,
    strategies: Sequence[str] | None = None,
    zero_floor: float = ZERO_FLOOR,
) -> pd.DataFrame:
    """Relative deviation of every strategy on every problem (rules 3 to 7).

    Args:
        agg: output of :func:`aggregate`.
        problem: columns that identify a problem.
        strategies: strategies to compare; default every strategy in ``agg``. A strategy absent
            from a problem is added there with ``median = NaN`` (missing, rule 5).
        zero_floor: denominator floor for a best value of zero (rule 3); must be > 0.

    Returns:
        One row per problem x strategy: ``*problem, strategy, median, n_failed, best,
        denominator, floored, dropped, drop_reason, rd, ratio, is_best, state`` where ``state``
        is ``"ok"``, ``"diverged"``, ``"missing"`` or ``"dropped"``. ``rd``/``ratio`` are NaN on
        dropped problems and for missing strategies, ``inf`` for diverged ones.
    """
    if not zero_floor > 0:
        raise ValueError(f"zero_floor must be > 0, got {zero_floor}")
    problem = list(problem)
    _check_columns(agg, [*problem, "strategy", "median"], "agg")
    if agg.empty:
        raise NoUsableRunsError("agg has no rows: no problem to compare strategies on")
    if (agg["median"] < 0).any():
        raise ValueError("medians must be >= 0 for a relative deviation")
    names = strategy_order(strategies if strategies is not None else agg["strategy"].unique())

    # Complete the grid problem x strategy; absent cells are missing runs (rule 5).
    problems = agg[problem].drop_duplicates()
    grid = problems.merge(pd.DataFrame({"strategy": names}), how="cross")
    carried = [c for c in ("median", "n_failed") if c in agg.columns]
    dev = grid.merge(agg[[*problem, "strategy", *carried]], on=[*problem, "strategy"], how="left")
    dev["median"] = dev["median"].astype(float)
    dev["n_failed"] = dev["n_failed"].fillna(0).astype(int) if "n_failed" in dev else 0

    # Best per problem over strategies with a value (NaN skipped, inf kept).
    best = dev.groupby(problem, sort=False, dropna=False)["median"].transform("min")
    dev["best"] = best.astype(float)
    dev["dropped"] = ~np.isfinite(dev["best"].to_numpy())
    all_missing = dev["best"].isna()
    dev["drop_reason"] = np.where(
        dev["dropped"], np.where(all_missing, "no usable runs", "every strategy diverged"), ""
    )
    dev["denominator"] = np.maximum(dev["best"].to_numpy(), zero_floor)
    dev["floored"] = ~dev["dropped"] & (dev["best"] < zero_floor)

    f, f_best, denom = (dev[c].to_numpy(dtype=float) for c in ("median", "best", "denominator"))
    with np.errstate(invalid="ignore", divide="ignore"):
        rd = np.where(np.isinf(f), np.inf, (f - f_best) / denom)
        ratio = np.where(dev["floored"].to_numpy(), 1.0 + rd,
                         np.where(np.isinf(f), np.inf, f / denom))
    dropped = dev["dropped"].to_numpy()
    dev["rd"] = np.where(dropped, np.nan, rd)
    dev["ratio"] = np.where(dropped, np.nan, ratio)
    dev["is_best"] = ~dropped & np.isfinite(f) & (f == f_best)
    dev["state"] = np.select(
        [dropped, np.isnan(f), np.isinf(f)], ["dropped", "missing", "diverged"], default="ok"
    )

    for key, group in dev[dev["dropped"]].groupby(problem, sort=False):
        logger.warning("problem %s dropped from the robust criterion: %s",
                       problem_label(key), group["drop_reason"].iloc[0])
    n_floored = dev.loc[dev["floored"], problem].drop_duplicates().shape[0]
    if n_floored:
        logger.info("%d problem(s) have a best value below %g; RD uses that floor", n_floored,
                    zero_floor)

    columns = [*problem, "strategy", "median", "n_failed", "best", "denominator", "floored",
               "dropped", "drop_reason", "rd", "ratio", "is_best", "state"]
    dev = dev[columns]
    dev.attrs.update(agg.attrs)
    dev.attrs["problem"] = problem
    dev.attrs["zero_floor"] = zero_floor
    return _sort_problem_strategy(dev, problem)


def dropped_problems(dev: pd.DataFrame, problem: Sequence[str] | None = None) -> pd.DataFrame:
    """Problems left out of the criterion (rule 7), one row each with ``reason``."""
    problem = list(problem or dev.attrs.get("problem", PROBLEM))
    out = dev.loc[dev["dropped"], [*problem, "drop_reason"]].drop_duplicates(problem)
    return out.rename(columns={"drop_reason": "reason"}).reset_index(drop=True)


def _determined(rd: np.ndarray, reduce: Callable[[np.ndarray], float]) -> float:
    """``reduce`` when it is determined: inf if any inf, else NaN if any NaN (or empty)."""
    if len(rd) == 0:
        return math.nan
    if np.isinf(rd).any():
        return math.inf
    if np.isnan(rd).any():
        return math.nan
    return float(reduce(rd))


def _nothing_left_message(dev: pd.DataFrame, problem: Sequence[str], *,
                          count_failed: bool = True) -> str:
    """Why no problem of ``dev`` can be compared (every one dropped, rule 7)."""
    dropped = dropped_problems(dev, problem)
    if dropped.empty:
        return "No problem to compare strategies on."
    reasons = ", ".join(f"{n} {why}" for why, n in dropped["reason"].value_counts().items())
    text = (f"No problem left to compare strategies on: all {len(dropped)} problem(s) dropped "
            f"({reasons})")
    if count_failed and "n_failed" in dev:
        text += f"; {int(dev['n_failed'].sum())} failed run(s)"
    return f"{text}."


def _require_rankable(dev: pd.DataFrame, runs: pd.DataFrame, problem: Sequence[str]) -> None:
    """Raise :class:`NoUsableRunsError` with the runs' failure summary when nothing is left."""
    if dev["dropped"].all():
        raise NoUsableRunsError(
            f"{_nothing_left_message(dev, problem, count_failed=False)} "
            f"{failure_summary(runs)}")


def robust_ranking(dev: pd.DataFrame, problem: Sequence[str] | None = None) -> pd.DataFrame:
    """Relative robust criterion ``R``, mean ``RD``, best counts and the ranking.

    Args:
        dev: output of :func:`relative_deviations` (possibly a subset of its problems).
        problem: problem columns; default the ones recorded in ``dev.attrs``.

    Returns:
        Indexed by strategy, sorted by ``rank`` then ``mean_rd``: ``label, rank, R, mean_rd,
        n_best, n_problems`` (problems in the criterion), ``n_diverged, n_missing``, ``n_failed``
        (failed runs on every problem of ``dev``, dropped ones included), ``worst_problem``
        (the problem attaining ``R``, or the first diverged/missing one). ``rank`` is ascending
        ``R`` with ties sharing the lowest rank; ``inf`` after finite, NaN last.

    Raises:
        NoUsableRunsError: no problem is left to compare on (rule 8).
    """
    problem = list(problem or dev.attrs.get("problem", PROBLEM))
    kept = dev[~dev["dropped"]]
    n_problems = kept[problem].drop_duplicates().shape[0]
    if n_problems == 0:
        raise NoUsableRunsError(_nothing_left_message(dev, problem))
    rows = []
    for strategy in strategy_order(dev["strategy"].unique()):
        mine = kept[kept["strategy"] == strategy]
        rd = mine["rd"].to_numpy(dtype=float)
        worst = _determined(rd, np.max)
        where = (np.flatnonzero(np.isinf(rd)) if math.isinf(worst)
                 else np.flatnonzero(np.isnan(rd)) if math.isnan(worst)
                 else np.flatnonzero(rd == worst))
        worst_problem = (problem_label(mine.iloc[where[0]][problem].tolist())
                         if len(where) else "")
        rows.append({
            "strategy": strategy,
            "label": STRATEGY_LABELS.get(strategy, strategy),
            "R": worst,
            "mean_rd": _determined(rd, np.mean),
            "n_best": int(mine["is_best"].sum()),
            "n_problems": n_problems,
            "n_diverged": int(np.isinf(rd).sum()),
            "n_missing": int(np.isnan(rd).sum()),
            "n_failed": (int(dev.loc[dev["strategy"] == strategy, "n_failed"].sum())
                         if "n_failed" in dev else 0),
            "worst_problem": worst_problem,
        })
    ranking = pd.DataFrame(rows).set_index("strategy")
    ranking.insert(1, "rank", ranking["R"].rank(method="min", na_option="bottom").astype(int))
    ranking = ranking.sort_values(["rank", "mean_rd"], kind="stable", na_position="last")
    ranking.attrs.update({k: v for k, v in dev.attrs.items() if k != "problem"})
    ranking.attrs["problem"] = problem
    return ranking


def rank_strategies(
    runs: pd.DataFrame,
    metric: str,
    problem: Sequence[str] = PROBLEM,
    *,
    zero_floor: float = ZERO_FLOOR,
    failed: str = "exclude",
) -> pd.DataFrame:
    """:func:`aggregate`, :func:`relative_deviations` and :func:`robust_ranking` in one call.

    Raises:
        NoUsableRunsError: nothing to rank (rule 8); the message quotes the first run error.
    """
    if runs.empty:
        raise NoUsableRunsError(f"Nothing to rank. {failure_summary(runs)}")
    agg = aggregate(runs, metric, problem, failed=failed)
    dev = relative_deviations(agg, problem, zero_floor=zero_floor)
    _require_rankable(dev, runs, problem)
    return robust_ranking(dev, problem)


def rank_by_direction(dev: pd.DataFrame, direction: str = "direction") -> pd.DataFrame:
    """The robust ranking computed within each search direction's problems.

    ``f*`` is per problem and a problem belongs to one direction, so the deviations are reused and
    only the maximum, mean and ranks are taken within each direction.

    Returns:
        Long frame: ``direction, strategy`` followed by the columns of :func:`robust_ranking`.
        A direction whose problems were all dropped is left out, with a warning.

    Raises:
        NoUsableRunsError: no direction has a problem to compare on.
    """
    problem = list(dev.attrs.get("problem", PROBLEM))
    if direction not in problem:
        raise KeyError(f"{direction!r} is not a problem column ({problem})")
    order = [d for d in DIRECTION_LABELS if d in set(dev[direction])]
    order += sorted(set(dev[direction]) - set(order))
    parts = []
    for value in order:
        sub = dev[dev[direction] == value]
        sub.attrs.update(dev.attrs)
        if sub["dropped"].all():
            logger.warning("direction %s left out of the per-direction ranking: %s", value,
                           _nothing_left_message(sub, problem))
            continue
        ranking = robust_ranking(sub, problem).reset_index()
        ranking.insert(0, direction, value)
        parts.append(ranking)
    if not parts:
        raise NoUsableRunsError(_nothing_left_message(dev, problem))
    out = pd.concat(parts, ignore_index=True)
    out.attrs.update(dev.attrs)
    return out


def direction_table(by_direction: pd.DataFrame, direction: str = "direction") -> pd.DataFrame:
    """Wide view of :func:`rank_by_direction`: one row per strategy, ``<dir> rank``/``<dir> R``."""
    order = list(dict.fromkeys(by_direction[direction]))
    wide = pd.DataFrame(index=strategy_order(by_direction["strategy"].unique()))
    wide.index.name = "strategy"
    wide["label"] = [STRATEGY_LABELS.get(s, s) for s in wide.index]
    for value in order:
        sub = by_direction[by_direction[direction] == value].set_index("strategy")
        wide[f"{value} rank"] = sub["rank"].reindex(wide.index)
        wide[f"{value} R"] = sub["R"].reindex(wide.index)
    return wide


# --------------------------------------------------------------------------------------------
# Performance profiles
# --------------------------------------------------------------------------------------------


def performance_profile(
    dev: pd.DataFrame, taus: Sequence[float] | np.ndarray | None = None, *, n_taus: int = 200
) -> pd.DataFrame:
    """AlgoPerf-style profile ``rho_a(tau)`` = share of kept problems with ratio ``<= tau``.

    The ratio is ``f(a, s) / f*(s)`` (``1 + RD`` on floored problems, rule 3); diverged and missing
    cells never count as solved; dropped problems (rule 7) are not in the denominator.

    Args:
        dev: output of :func:`relative_deviations`.
        taus: grid of ``tau >= 1``; default a geometric grid from 1 to 1.05 x the largest finite
            ratio (at least 2), joined with every finite ratio so that each step is exact.
        n_taus: size of the default geometric grid.

    Returns:
        Long frame ``strategy, tau, rho`` sorted by strategy then ``tau``.
    """
    kept = dev[~dev["dropped"]]
    n_problems = kept[list(dev.attrs.get("problem", PROBLEM))].drop_duplicates().shape[0]
    ratios = kept["ratio"].to_numpy(dtype=float)
    finite = ratios[np.isfinite(ratios)]
    if taus is None:
        top = max(2.0, 1.05 * float(finite.max())) if len(finite) else 2.0
        taus = np.unique(np.concatenate([np.geomspace(1.0, top, n_taus), finite]))
    taus = np.asarray(taus, dtype=float)

    parts = []
    for strategy in strategy_order(dev["strategy"].unique()):
        mine = kept.loc[kept["strategy"] == strategy, "ratio"].to_numpy(dtype=float)
        mine = mine[np.isfinite(mine)]
        solved = (mine[None, :] <= taus[:, None]).sum(axis=1)
        rho = solved / n_problems if n_problems else np.full(len(taus), np.nan)
        parts.append(pd.DataFrame({"strategy": strategy, "tau": taus, "rho": rho}))
    profile = pd.concat(parts, ignore_index=True)
    profile.attrs.update(dev.attrs)
    profile.attrs["n_problems"] = n_problems
    return profile


_FALLBACK_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")


def strategy_styles(
    strategies: Sequence[str], palette: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Colour and marker per strategy.

    Taken from ``palette`` when given (a value may be a colour or a ``dict(color=, marker=)``),
    else from ``goals.plotting.strategy_style`` when that module exists, else from a fixed
    fallback (``tab10`` then ``Dark2`` colours, a marker cycle, in
    :data:`goals.labels.STRATEGIES` order).
    """
    style_fn = None
    if palette is None:
        try:
            style_fn = importlib.import_module("goals.plotting").strategy_style
        except (ImportError, AttributeError):
            style_fn = None
    import matplotlib.pyplot as plt  # noqa: PLC0415 - keep import light for table-only use

    colours = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("Dark2").colors)
    unknown = sorted(set(strategies) - set(STRATEGIES))
    styles = {}
    for strategy in strategies:
        index = (STRATEGIES.index(strategy) if strategy in STRATEGIES
                 else len(STRATEGIES) + unknown.index(strategy))
        style = {"color": colours[index % len(colours)],
                 "marker": _FALLBACK_MARKERS[index % len(_FALLBACK_MARKERS)]}
        if palette is not None and strategy in palette:
            given = palette[strategy]
            style.update(given if isinstance(given, Mapping) else {"color": given})
        elif style_fn is not None:
            try:
                given = dict(style_fn(strategy))
            except (KeyError, ValueError):  # an id the shared style does not know
                given = {}
            style.update({k: v for k, v in given.items() if k in ("color", "marker", "linestyle")})
        styles[strategy] = style
    return styles


def plot_performance_profile(
    profile: pd.DataFrame,
    ax: matplotlib.axes.Axes | None = None,
    *,
    palette: Mapping[str, Any] | None = None,
    title: str | None = None,
    legend: bool = True,
) -> matplotlib.axes.Axes:
    """Draw ``rho_a(tau)`` as step curves on a log ``tau`` axis, one colour + marker per strategy.

    Args:
        profile: output of :func:`performance_profile`.
        ax: axes to draw on; a new figure is made when None.
        palette: optional colours/markers, see :func:`strategy_styles`.
        title: axes title; default names the metric and the number of problems.
        legend: draw a legend to the right of the axes.

    Returns:
        The axes.
    """
    import matplotlib.pyplot as plt  # noqa: PLC0415

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    strategies = strategy_order(profile["strategy"].unique())
    styles = strategy_styles(strategies, palette)
    for i, strategy in enumerate(strategies):
        mine = profile[profile["strategy"] == strategy].sort_values("tau")
        every = max(1, len(mine) // 8)
        ax.step(mine["tau"], mine["rho"], where="post",
                label=STRATEGY_LABELS.get(strategy, strategy), markevery=(i % every, every),
                markersize=4, linewidth=1.2, **styles[strategy])
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(r"$\tau$ (ratio to the best median)")
    ax.set_ylabel(r"$\rho_a(\tau)$ (share of problems)")
    metric = profile.attrs.get("metric", "")
    n_problems = profile.attrs.get("n_problems")
    ax.set_title(title if title is not None
                 else f"{METRIC_LABELS.get(metric, metric)}, {n_problems} problems")
    ax.grid(True, which="major", alpha=0.3)
    if legend:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", frameon=False)
    return ax


# --------------------------------------------------------------------------------------------
# Per-seed view and separated modes
# --------------------------------------------------------------------------------------------


def detect_modes(
    seeds: pd.DataFrame,
    problem: Sequence[str] = PROBLEM,
    *,
    gap_factor: float = 3.0,
    rel_gap: float = 0.25,
    min_seeds: int = 3,
) -> pd.DataFrame:
    """Flag problem x strategy cells whose seeds split into separated groups.

    Rule (simple on purpose): sort the finite seed values, find the largest gap between
    neighbours, and split there into a low and a high group. The cell is ``separated`` when

    - ``gap > gap_factor * within``, with ``within`` the larger range of the two groups, and
    - ``gap > rel_gap * median(|values|)``, so that tiny absolute differences never count.

    At least ``min_seeds`` finite values are needed (two values always form two "groups" of zero
    range); with fewer, ``separated`` is NaN ("cannot tell"). Independently, a cell where some but
    not all seeds diverged is a split too: ``diverged_split`` is True there.

    Args:
        seeds: output of :func:`per_seed_values`.
        problem: problem columns.
        gap_factor: how many within-group ranges the gap must exceed.
        rel_gap: how large the gap must be relative to the median value.
        min_seeds: finite values needed to judge the gap.

    Returns:
        One row per problem x strategy: ``n_seeds, n_diverged, gap, within, gap_ratio, n_low,
        n_high, separated, diverged_split``.
    """
    problem = list(problem)
    rows = []
    for key, group in seeds.groupby([*problem, "strategy"], sort=False):
        used = group["value"].dropna().to_numpy(dtype=float)
        finite = np.sort(used[np.isfinite(used)])
        n_diverged = int(np.isinf(used).sum())
        row = {**dict(zip([*problem, "strategy"], key)), "n_seeds": len(used),
               "n_diverged": n_diverged, "gap": math.nan, "within": math.nan,
               "gap_ratio": math.nan, "n_low": 0, "n_high": 0, "separated": math.nan,
               "diverged_split": bool(0 < n_diverged < len(used))}
        if len(finite) >= max(2, min_seeds):
            gaps = np.diff(finite)
            cut = int(np.argmax(gaps))
            low, high = finite[: cut + 1], finite[cut + 1:]
            gap = float(gaps[cut])
            within = float(max(np.ptp(low), np.ptp(high)))
            scale = float(np.median(np.abs(finite)))
            row.update({
                "gap": gap, "within": within,
                "gap_ratio": gap / within if within > 0 else (math.inf if gap > 0 else math.nan),
                "n_low": len(low), "n_high": len(high),
                "separated": bool(gap > gap_factor * within and gap > rel_gap * scale),
            })
        rows.append(row)
    out = pd.DataFrame(rows)
    out["separated"] = out["separated"].astype(object)
    return _sort_problem_strategy(out, problem) if len(out) else out


def plot_per_seed(
    seeds: pd.DataFrame,
    problem: Sequence[str] = PROBLEM,
    *,
    palette: Mapping[str, Any] | None = None,
    log: bool = True,
    ncols: int = 3,
) -> matplotlib.figure.Figure:
    """Final metric per seed, one panel per problem, one column of points per strategy.

    A diverged seed is drawn as a black ``x`` at the top edge of its panel; failed seeds are not
    drawn. Points of one strategy are spread slightly sideways so coinciding seeds stay visible.
    """
    import matplotlib.pyplot as plt  # noqa: PLC0415

    problem = list(problem)
    keys = seeds[problem].drop_duplicates().sort_values(problem, key=_sort_key, kind="stable")
    keys = keys.itertuples(index=False)
    keys = [tuple(k) for k in keys]
    strategies = strategy_order(seeds["strategy"].unique())
    styles = strategy_styles(strategies, palette)
    nrows = max(1, math.ceil(len(keys) / ncols))
    ncols = max(1, min(ncols, len(keys)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False,
                             layout="constrained")
    for ax, key in zip(axes.flat, keys):
        mask = np.logical_and.reduce([seeds[c] == v for c, v in zip(problem, key)])
        cell = seeds[mask]
        for i, strategy in enumerate(strategies):
            values = cell.loc[cell["strategy"] == strategy, "value"].dropna().to_numpy(float)
            finite = values[np.isfinite(values)]
            offsets = np.linspace(-0.2, 0.2, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(i + offsets[: len(finite)], finite, s=14, color=styles[strategy]["color"],
                       marker=styles[strategy]["marker"], zorder=3)
            n_div = int(np.isinf(values).sum())
            if n_div:
                ax.scatter(i + offsets[len(finite):], np.full(n_div, 0.97), marker="x",
                           color="black", s=18, transform=ax.get_xaxis_transform(), zorder=3)
        if log and (cell["value"].replace(np.inf, np.nan) > 0).any():
            ax.set_yscale("log")
        ax.set_xticks(range(len(strategies)))
        ax.set_xticklabels([STRATEGY_LABELS.get(s, s) for s in strategies], rotation=70,
                           fontsize="x-small")
        ax.set_title(problem_label(key), fontsize="small")
        ax.grid(True, axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    metric = seeds.attrs.get("metric", "")
    fig.suptitle(f"{METRIC_LABELS.get(metric, metric)} per seed (x: diverged)", fontsize="medium")
    return fig


# --------------------------------------------------------------------------------------------
# Sentences and the full report
# --------------------------------------------------------------------------------------------


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe_rank(ranking: pd.DataFrame, strategy: str, metric: str | None = None) -> str:
    """One sentence saying where ``strategy`` ranks, read from a :func:`robust_ranking` frame.

    Args:
        ranking: output of :func:`robust_ranking` (or :func:`rank_strategies`).
        strategy: strategy id, e.g. ``"goals"``.
        metric: metric name for the sentence; default the one in ``ranking.attrs``.
    """
    metric = metric or ranking.attrs.get("metric", "the metric")
    what = METRIC_LABELS.get(metric, metric)
    label = STRATEGY_LABELS.get(strategy, strategy)
    if strategy not in ranking.index:
        return f"{label} has no runs in this comparison on {what}."
    row = ranking.loc[strategy]
    if math.isnan(row["R"]) and int(row["n_missing"]) == int(row["n_problems"]):
        failed = (f" ({int(row['n_failed'])} failed run(s))" if int(row["n_failed"]) else "")
        return (f"{label} could not be ranked on {what}: it has no usable run on any of the "
                f"{int(row['n_problems'])} compared problem(s){failed}, so it is listed last.")
    rank, total = int(row["rank"]), len(ranking)
    tied = [STRATEGY_LABELS.get(s, s) for s in ranking.index[ranking["rank"] == rank]
            if s != strategy]
    place = f"ranks {_ordinal(rank)} of {total}"
    if tied:
        place += f" (tied with {', '.join(tied)})"
    if math.isinf(row["R"]):
        detail = f"it diverged on {int(row['n_diverged'])} problem(s), so R is infinite"
    elif math.isnan(row["R"]):
        detail = f"it has no usable runs on {int(row['n_missing'])} problem(s), so R is unknown"
    else:
        detail = f"R = {row['R']:.3g}, mean RD = {row['mean_rd']:.3g}"
    best = f"best on {int(row['n_best'])} of {int(row['n_problems'])} problem(s)"
    return f"{label} {place} on {what} by the relative robust criterion ({detail}; {best})."


def describe_directions(by_direction: pd.DataFrame, direction: str = "direction") -> str:
    """Sentences naming the first-ranked strategy (or tied strategies) within each direction.

    Args:
        by_direction: output of :func:`rank_by_direction`.
        direction: the direction column.
    """
    metric = by_direction.attrs.get("metric", "the metric")
    sentences = []
    for value in dict.fromkeys(by_direction[direction]):
        sub = by_direction[by_direction[direction] == value]
        first = sub[sub["rank"] == sub["rank"].min()]
        names = " and ".join(STRATEGY_LABELS.get(s, s) for s in first["strategy"])
        r_value = float(first["R"].iloc[0])
        # The first rank has a non-finite R only when no strategy has a finite one.
        detail = (f"R = {r_value:.3g}" if math.isfinite(r_value)
                  else "no strategy has a finite R")
        sentences.append(
            f"With {DIRECTION_LABELS.get(value, value)} directions, {names} "
            f"{'rank' if len(first) > 1 else 'ranks'} first on "
            f"{METRIC_LABELS.get(metric, metric)} ({detail}, {int(first['n_problems'].iloc[0])} "
            "problems).")
    return " ".join(sentences)


def _save_figure(fig: matplotlib.figure.Figure, stem: Path, info: Mapping[str, str]) -> None:
    """PDF and PNG with the provenance in their metadata and no time stamp (same input, same
    bytes)."""
    text = "; ".join(f"{k}={v}" for k, v in info.items())
    fig.savefig(stem.with_name(f"{stem.name}.pdf"), metadata={
        "Creator": "goals.robust", "Subject": text, "CreationDate": None, "Producer": None})
    fig.savefig(stem.with_name(f"{stem.name}.png"), dpi=150, metadata={
        "Software": None, "Description": text})


def _ranking_display(ranking: pd.DataFrame) -> pd.DataFrame:
    return ranking[["label", "rank", "R", "mean_rd", "n_best", "n_problems", "n_diverged",
                    "n_missing", "n_failed", "worst_problem"]]


def robustness_report(
    runs: pd.DataFrame,
    out_dir: str | Path,
    *,
    metrics: Sequence[str] = (TRAIN_METRIC, TEST_METRIC),
    problem: Sequence[str] = PROBLEM,
    zero_floor: float = ZERO_FLOOR,
    failed: str = "exclude",
    palette: Mapping[str, Any] | None = None,
    provenance_extra: Mapping[str, Any] | None = None,
) -> dict[str, pd.DataFrame]:
    """Compute every robustness table, write them and the figures to ``out_dir``.

    For each metric ``m`` (key ``train`` / ``test`` for the paper's two, else the column name) the
    returned dict holds ``aggregate_m``, ``deviation_m`` (long), ``rd_m`` (wide: problems x
    strategies), ``ranking_m``, ``ranking_by_direction_m`` (long; only when ``direction`` is a
    problem column), ``directions_m`` (wide), ``profile_m``, ``dropped_m``, ``per_seed_m`` and
    ``modes_m``. Every table except the long ``deviation_m``, ``profile_m`` and ``per_seed_m``
    (written as CSV only) goes through :func:`goals.tables.write_table` (``.csv .json .md .tex``).
    Figures: ``performance_profile.pdf/.png`` (one panel per metric) and
    ``per_seed_<m>.pdf/.png``.

    Args:
        runs: tidy run records (one row per run).
        out_dir: folder for tables and figures (created).
        metrics: metrics to rank on, lower is better.
        problem: problem columns.
        zero_floor: rule 3's floor.
        failed: how failed runs enter (rule 1): ``"exclude"`` or ``"diverged"``.
        palette: optional colours/markers, see :func:`strategy_styles`.
        provenance_extra: entries added to every file's provenance (profile, source of records).

    Returns:
        The tables by name.

    Raises:
        NoUsableRunsError: nothing to rank (rule 8), before any file is written; the message
            counts the failed and diverged runs and quotes the first error.
    """
    import matplotlib.pyplot as plt  # noqa: PLC0415

    for metric in metrics:  # check every metric before writing anything
        rank_strategies(runs, metric, problem, zero_floor=zero_floor, failed=failed)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    problem = list(problem)
    extra = {"n_runs": len(runs), "zero_floor": zero_floor, "failed_runs": failed,
             **(provenance_extra or {})}
    info = provenance(extra, made_by="goals.robust.robustness_report")
    tables: dict[str, pd.DataFrame] = {}

    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics) + 2.0, 4.0),
                             squeeze=False, layout="constrained")
    for i, metric in enumerate(metrics):
        key = METRIC_KEYS.get(metric, metric)
        what = METRIC_LABELS.get(metric, metric)
        agg = aggregate(runs, metric, problem, failed=failed)
        dev = relative_deviations(agg, problem, zero_floor=zero_floor)
        _require_rankable(dev, runs, problem)
        ranking = robust_ranking(dev, problem)
        seeds = per_seed_values(runs, metric, problem, failed=failed)
        seeds.attrs["metric"] = metric
        rd_wide = dev.pivot_table(index=problem, columns="strategy", values="rd", dropna=False,
                                  aggfunc="first", sort=False)
        rd_wide = rd_wide[strategy_order(rd_wide.columns)]

        tables[f"aggregate_{key}"] = agg
        tables[f"deviation_{key}"] = dev
        tables[f"rd_{key}"] = rd_wide
        tables[f"ranking_{key}"] = ranking
        tables[f"dropped_{key}"] = dropped_problems(dev, problem)
        tables[f"profile_{key}"] = performance_profile(dev)
        tables[f"per_seed_{key}"] = seeds
        tables[f"modes_{key}"] = detect_modes(seeds, problem)

        write_table(_ranking_display(ranking), out / f"ranking_{key}",
                    f"Relative robust criterion R on the {what} (median over seeds); rank by "
                    "ascending R, ties share the lowest rank.", provenance_extra=extra)
        write_table(rd_wide, out / f"rd_{key}",
                    f"Relative deviation RD from the best median {what} per problem.",
                    provenance_extra=extra)
        write_table(agg, out / f"aggregate_{key}",
                    f"Median {what} over seeds per problem and strategy, with its spread.",
                    provenance_extra=extra)
        write_table(tables[f"dropped_{key}"], out / f"dropped_{key}",
                    f"Problems left out of the criterion on the {what}.", provenance_extra=extra)
        write_table(tables[f"modes_{key}"], out / f"modes_{key}",
                    f"Separated modes of the {what} across seeds.", provenance_extra=extra)
        if "direction" in problem:
            by_direction = rank_by_direction(dev)
            tables[f"ranking_by_direction_{key}"] = by_direction
            tables[f"directions_{key}"] = direction_table(by_direction)
            write_table(tables[f"directions_{key}"], out / f"directions_{key}",
                        f"Rank and R on the {what} within each search direction's problems.",
                        provenance_extra=extra)
        for name in (f"deviation_{key}", f"profile_{key}", f"per_seed_{key}"):
            tables[name].to_csv(out / f"{name}.csv", index=False)

        plot_performance_profile(tables[f"profile_{key}"], axes[0, i], palette=palette,
                                 legend=i == len(metrics) - 1)
        seed_fig = plot_per_seed(seeds, problem, palette=palette)
        _save_figure(seed_fig, out / f"per_seed_{key}", info)
        plt.close(seed_fig)

    _save_figure(fig, out / "performance_profile", info)
    plt.close(fig)
    logger.info("robustness report written to %s", out)
    return tables
