"""Optimizer overhead per function evaluation (FE): GOALS steps against bare FEs.

A bare FE is one call of the closure the engine uses (draw a batch, zero the gradients, forward,
backward), the least any closure-driven optimizer pays per FE. A GOALS step makes several FEs and
does its own work between them (directions, parameter moves, directional derivatives, one host
synchronisation per line-search decision). The overhead per FE is

    (time of GOALS steps / FEs they made) / (time of bare FEs / their count) - 1

measured on the same model, sampler and batch size, in alternating blocks, median over rounds.
For reference, the same is measured for the direction's own ``torch.optim`` optimizer (one FE and
one foreach update per step): the column ``torch.optim`` is what a classic optimizer pays. The
column ``+-`` is half the interquartile range of the per-round ratios, the noise of the median.

Problems: the quick profile's digits MLP and CNN (settings read from ``profiles/quick.yaml``) and
a larger CPU model, the CIFAR network 3c3d on CIFAR-shaped random tensors, where one FE costs
enough that Python-level work weighs less. Target: overhead <= 3 % per FE.

    python bench/overhead.py            # README numbers (about 3 minutes on 1 thread)
    python bench/overhead.py --quick    # seconds: digits MLP only, small blocks
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from benchlib import (
    Problem,
    cifar_problem,
    closure_for,
    digits_problem,
    goals_and_bare_blocks,
    interleave,
    median,
    median_ratio,
    parse_cpu_arguments,
    percent,
    quick_settings,
    ratio_spread,
    result_line,
)

import goals

DIRECTIONS = ("sgd", "rmsprop", "adam")
TARGET = 0.03


@dataclass
class Case:
    """One model setting: how to build it and how long the alternating blocks are."""

    label: str
    build: object
    repeats: int
    steps: int
    warmup: int


def torch_reference(problem: Problem, direction: str) -> torch.optim.Optimizer:
    """The direction's own torch optimizer (foreach kernels), with a negligible learning rate."""
    kinds = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}
    return kinds[direction](problem.model.parameters(), lr=1e-7, foreach=True)


def measure(problem: Problem, direction: str, repeats: int, steps: int,
            warmup: int) -> dict[str, float]:
    """Rotate blocks of GOALS steps, of bare FEs and of torch-optimizer steps; median ratios.

    The torch optimizer (``torch.optim.SGD``/``RMSprop``/``Adam``, one FE per step) is a point
    of reference: what the classic update of the same direction costs on top of an FE.
    """
    closure = closure_for(problem)
    optimizer = goals.GOALS(problem.model.parameters(), direction=direction,
                            running_stats=goals.running_stat_buffers(problem.model))
    reference = torch_reference(problem, direction)
    # The bare block is sized like the GOALS block, so all sides last about as long.
    goals_block, bare_block, calls = goals_and_bare_blocks(optimizer, closure, steps, warmup)

    def reference_block() -> int:
        for _ in range(calls):
            reference.step(closure)
        return calls

    rounds = interleave([goals_block, bare_block, reference_block], repeats)
    return {
        "bare_ms": 1e3 * median([timings[1].per_unit for timings in rounds]),
        "goals_ms": 1e3 * median([timings[0].per_unit for timings in rounds]),
        "fe_per_step": sum(timings[0].units for timings in rounds) / (repeats * steps),
        "overhead": median_ratio(rounds, 0, 1) - 1.0,
        "spread": ratio_spread(rounds, 0, 1),
        "reference_overhead": median_ratio(rounds, 2, 1) - 1.0,
    }


def cases(quick: bool) -> list[Case]:
    """The model settings of this run."""
    settings, _ = quick_settings()
    batch, width = settings["batch_size"], settings["width"]
    if quick:
        return [Case("digits/mlp (tiny)", lambda: digits_problem("mlp", 16, width=0.5),
                     repeats=3, steps=3, warmup=3)]
    found = [
        Case(f"digits/{name} b{batch} w{width:g}",
             (lambda name=name: digits_problem(name, batch, width=width)),
             repeats=15, steps=20 if name == "mlp" else 10, warmup=20)
        for name in settings["models"] if name in ("mlp", "cnn")
    ]
    found.append(Case("cifar-shaped/3c3d b128 w1", lambda: cifar_problem("3c3d", 128),
                      repeats=5, steps=2, warmup=3))
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_cpu_arguments(__doc__.split("\n\n")[0], argv)
    settings, source = quick_settings()
    print(f"quick problems from {source}: batch_size={settings['batch_size']} "
          f"width={settings['width']}")

    print(f"{'model':28} {'params':>9} {'direction':9} {'bare ms/FE':>10} {'GOALS ms/FE':>11} "
          f"{'FE/step':>7} {'overhead':>8} {'+-':>5} {'torch.optim':>11}")
    worst: dict[str, float] = {}
    worst_where: dict[str, str] = {}
    for case in cases(args.quick):
        for direction in DIRECTIONS:
            problem = case.build()
            row = measure(problem, direction, case.repeats, case.steps, case.warmup)
            print(f"{case.label:28} {problem.parameter_count:>9} {direction:9} "
                  f"{row['bare_ms']:>10.3f} {row['goals_ms']:>11.3f} {row['fe_per_step']:>7.2f} "
                  f"{percent(row['overhead']):>8} {percent(row['spread']):>5} "
                  f"{percent(row['reference_overhead']):>11}",
                  flush=True)
            if row["overhead"] >= worst.get(case.label, -float("inf")):
                worst[case.label], worst_where[case.label] = row["overhead"], direction

    per_model = ", ".join(f"{label.split()[0]} {percent(value)} ({worst_where[label]})"
                          for label, value in worst.items())
    largest = list(worst)[-1]
    overall = max(worst.values())
    passed = overall <= TARGET
    details = f"worst per model: {per_model}"
    if not passed:
        meets = [label.split()[0] for label, value in worst.items() if value <= TARGET]
        details += f"; meets target: {', '.join(meets) or 'none'}"
    result_line("overhead_per_fe", percent(overall), f"<={percent(TARGET)}", passed,
                f"{details}; largest model {largest.split()[0]} {percent(worst[largest])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
