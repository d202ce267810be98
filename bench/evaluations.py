"""Function evaluations (FEs) per iteration of GOALS and GOS-LS on the quick problems.

Each problem (model, direction) of ``profiles/quick.yaml`` is trained with the strategies
``goals`` and ``gos-ls`` through the engine (:func:`goals.runs.run_one`, the same runs as the
sweep, all seeds of the profile). The per-iteration trace says how many FEs each iteration made.
The first 5 % of iterations are dropped (the first step spends one extra FE at the start point,
and the step size is still growing from its 1e-8 start); over the rest, pooled over seeds, the
median and the mean FEs per iteration are reported. Target: median <= 2.2 for GOALS.

The full run also lists Adam with ``betas=(0, 0.999)`` (no first-moment momentum, as the lineage
ran its Adam directions) next to the default ``betas=(0.9, 0.999)``, for comparison; those rows do
not enter the verdict.

A classic optimizer makes 1 FE per iteration. GOS-LS makes 2 by construction (one trial, one FE
at the accepted point); GOALS makes 2 when its first trial brackets the minimum and its surrogate
minimiser meets the criterion, and more for every growth or refinement.

    python bench/evaluations.py            # README numbers (the profile's budget; minutes)
    python bench/evaluations.py --quick    # seconds: digits MLP, 60 FEs, one seed
"""

from __future__ import annotations

import argparse
import math
import sys

from benchlib import median, quick_settings, result_line, set_threads

STRATEGIES = ("goals", "gos-ls")
DIRECTIONS = ("sgd", "rmsprop", "adam")
TARGET = 2.2
WARMUP_FRACTION = 0.05


def configs(quick: bool) -> list[dict]:
    """Run configurations: the quick profile's, restricted to GOALS and GOS-LS."""
    settings, _ = quick_settings()
    base = {"dataset": settings["dataset"], "batch_size": settings["batch_size"],
            "width": settings["width"], "budget_fe": settings["budget_fe"], "threads": 1,
            "eval_every": settings["budget_fe"], "eval_size": 200}
    models, seeds = settings["models"], settings["seeds"]
    if quick:
        base.update(budget_fe=60, eval_every=60, width=0.5, batch_size=16)
        models, seeds = ["mlp"], [0]
    found = [dict(base, model=model, direction=direction, strategy=strategy, seed=seed)
             for model in models for direction in DIRECTIONS for strategy in STRATEGIES
             for seed in seeds]
    if not quick:
        # Adam without first-moment momentum, as the lineage ran it: for comparison only.
        found += [dict(base, model=model, direction="adam", strategy=strategy, seed=seed,
                       optimizer={"betas": [0.0, 0.999]})
                  for model in models for strategy in STRATEGIES for seed in seeds]
    return found


def steady_evaluations(trace: dict) -> list[int]:
    """FEs of each iteration after the first 5 % of iterations."""
    evaluations = [int(value) for value in trace["evaluations"]]
    skip = math.ceil(WARMUP_FRACTION * len(evaluations))
    return evaluations[skip:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    args = parser.parse_args(argv)
    set_threads(1)
    from goals.runs import run_one

    print(f"quick problems from {quick_settings()[1]}")
    pooled: dict[tuple[str, str, str], list[int]] = {}
    statuses: dict[tuple[str, str, str], list[str]] = {}
    for config in configs(args.quick):
        record = run_one(config)
        direction = config["direction"] + (" b1=0" if config.get("optimizer") else "")
        key = (config["model"], direction, config["strategy"])
        pooled.setdefault(key, []).extend(steady_evaluations(record["trace"]))
        statuses.setdefault(key, []).append(record["status"])

    print(f"{'model':6} {'direction':11} {'strategy':8} {'iterations':>10} {'median FE/it':>12} "
          f"{'mean FE/it':>10} status")
    worst_median, worst_mean, worst_where = 0.0, 0.0, ""
    for (model, direction, strategy), values in pooled.items():
        middle = median(values) if values else math.nan
        mean = sum(values) / len(values) if values else math.nan
        print(f"{model:6} {direction:11} {strategy:8} {len(values):>10} {middle:>12.2f} "
              f"{mean:>10.2f} {','.join(statuses[(model, direction, strategy)])}")
        if strategy == "goals" and direction in DIRECTIONS:
            if not middle <= worst_median:
                worst_median, worst_where = middle, f"{model}/{direction}"
            worst_mean = max(worst_mean, mean) if math.isfinite(mean) else math.nan

    passed = worst_median <= TARGET
    result_line("goals_fe_per_iteration", f"{worst_median:.2f}", f"<={TARGET}", passed,
                f"(worst median over problems, at {worst_where}; worst mean {worst_mean:.2f}; "
                f"budget {configs(args.quick)[0]['budget_fe']} FE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
