"""Shared helpers of the benchmark scripts: machine description, interleaved timing, problems.

Every benchmark compares things measured side by side in one process: blocks of A and blocks of
B alternate (A B, B A, A B, ...), each round gives one ratio, and the median over rounds is
reported. Shared machines drift (other processes, frequency changes); alternation and the median
keep that drift out of the ratio, which absolute timings cannot.

The scripts print a table and then one final line::

    RESULT <name>=<value> target<=<t> PASS|MISS ... | cpu=<model> cores=<n> torch=<v> threads=<n>

so a test or a reader can find the number without parsing the table.
"""

from __future__ import annotations

import functools
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import goals
from goals.data import RandomCropFlip, load_dataset
from goals.models import build_model

#: Repository root (the folder above ``bench/``).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Settings of the quick problems used when ``profiles/quick.yaml`` is not there (yet).
QUICK_FALLBACK: dict[str, Any] = {
    "dataset": "digits", "models": ["mlp", "cnn"], "batch_size": 32, "width": 1.0,
    "budget_fe": 1000, "seeds": [0], "threads": 1,
}


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine(device: str = "cpu") -> str:
    """One-line description of where the numbers were measured."""
    text = (f"cpu={cpu_model()!r} cores={os.cpu_count()} torch={torch.__version__} "
            f"threads={torch.get_num_threads()} clock={_clock[0]}")
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f" gpu={torch.cuda.get_device_name(torch.device(device))!r}"
    return text


def set_threads(threads: int) -> None:
    """Use ``threads`` intra-op CPU threads (the runs of the profiles use 1)."""
    torch.set_num_threads(int(threads))


def result_line(name: str, value: str, target: str, passed: bool, details: str = "",
                device: str = "cpu") -> str:
    """Format and print the final ``RESULT`` line; return it."""
    verdict = "PASS" if passed else "MISS"
    extra = f" {details}" if details else ""
    line = f"RESULT {name}={value} target{target} {verdict}{extra} | {machine(device)}"
    print(line, flush=True)
    return line


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


#: The clocks a benchmark can time with: process CPU time or wall time.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
_clock: list[str] = ["wall"]


def use_clock(name: str) -> None:
    """Time blocks with ``"cpu"`` (this process's CPU time) or ``"wall"`` time.

    On a shared machine, CPU time leaves out the time the process waited for a core, which wall
    time counts; with one torch thread it is the better clock for CPU work. GPU work needs wall
    time (the host waits for the device without using its CPU).
    """
    if name not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {name!r}")
    _clock[0] = name


def clock_name() -> str:
    """The clock in use."""
    return _clock[0]


@dataclass
class Timed:
    """Wall time of one block and the number of units (FEs, batches) it did."""

    seconds: float
    units: int

    @property
    def per_unit(self) -> float:
        return self.seconds / max(self.units, 1)


def time_block(block: Callable[[], int], synchronize: Callable[[], None] | None = None) -> Timed:
    """Run ``block`` (which returns how many units it did) once and time it."""
    gc.collect()
    clock = CLOCKS[_clock[0]]
    if synchronize is not None:
        synchronize()
    started = clock()
    units = block()
    if synchronize is not None:
        synchronize()
    return Timed(clock() - started, units)


def interleave(blocks: Sequence[Callable[[], int]], repeats: int,
               synchronize: Callable[[], None] | None = None) -> list[list[Timed]]:
    """Time the ``blocks`` in rotating order, ``repeats`` rounds.

    Round ``i`` starts with block ``i mod len(blocks)`` and runs the others after it in order,
    so a slow phase of the machine hits every side alike.

    Returns:
        One list of timings per round, in the order of ``blocks``.
    """
    rounds = []
    for index in range(repeats):
        timings: list[Timed | None] = [None] * len(blocks)
        for offset in range(len(blocks)):
            position = (index + offset) % len(blocks)
            timings[position] = time_block(blocks[position], synchronize)
        rounds.append(timings)
    return rounds


def median_ratio(rounds: Sequence[Sequence[Timed]], top: int = 0, bottom: int = 1) -> float:
    """Median over rounds of ``rounds[i][top].per_unit / rounds[i][bottom].per_unit``."""
    return median([timings[top].per_unit / timings[bottom].per_unit for timings in rounds])


def ratio_spread(rounds: Sequence[Sequence[Timed]], top: int = 0, bottom: int = 1) -> float:
    """Half the interquartile range of the per-round ratios: the noise of :func:`median_ratio`."""
    ratios = sorted(timings[top].per_unit / timings[bottom].per_unit for timings in rounds)
    if len(ratios) < 4:
        return (ratios[-1] - ratios[0]) / 2
    quartiles = statistics.quantiles(ratios, n=4)
    return (quartiles[2] - quartiles[0]) / 2


def quick_settings() -> tuple[dict[str, Any], str]:
    """Settings of the quick problems, read from ``profiles/quick.yaml`` when it exists.

    Returns:
        ``(settings, source)``: keys ``dataset``, ``models``, ``batch_size``, ``width``,
        ``budget_fe``, ``seeds``, ``threads``; ``source`` names where they came from.
    """
    path = REPO_ROOT / "profiles" / "quick.yaml"
    if not path.is_file():
        return dict(QUICK_FALLBACK), "built-in fallback (profiles/quick.yaml not found)"
    import yaml

    section = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("sweep", {})
    base, grid = dict(section.get("base") or {}), dict(section.get("grid") or {})

    def pick(key: str, default: Any) -> Any:
        if key in grid:
            return grid[key]
        return base.get(key, default)

    settings = {
        "dataset": pick("dataset", QUICK_FALLBACK["dataset"]),
        "models": pick("model", QUICK_FALLBACK["models"]),
        "batch_size": pick("batch_size", QUICK_FALLBACK["batch_size"]),
        "width": pick("width", QUICK_FALLBACK["width"]),
        "budget_fe": pick("budget_fe", QUICK_FALLBACK["budget_fe"]),
        "seeds": pick("seed", QUICK_FALLBACK["seeds"]),
        "threads": base.get("threads", QUICK_FALLBACK["threads"]) or 1,
    }
    for key in ("dataset", "batch_size", "width", "budget_fe"):
        # A field crossed in the grid: benchmark its first value.
        if isinstance(settings[key], list):
            settings[key] = settings[key][0]
    for key in ("models", "seeds"):
        if not isinstance(settings[key], list):
            settings[key] = [settings[key]]
    return settings, str(path.relative_to(REPO_ROOT))


@dataclass
class Problem:
    """A model with a batch sampler over its training tensors."""

    name: str
    model: torch.nn.Module
    sampler: goals.BatchSampler
    batch_size: int

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


@functools.lru_cache(maxsize=2)
def _digits(device: str) -> Any:
    return load_dataset("digits", device=device)


def digits_problem(model_name: str, batch_size: int, width: float = 1.0, seed: int = 0,
                   device: str = "cpu") -> Problem:
    """The scikit-learn digits with one of the quick models (``mlp``, ``cnn``)."""
    data = _digits(device)
    torch.manual_seed(seed)
    model = build_model(model_name, data.num_classes, data.in_channels, data.image_size,
                        width=width).to(device)
    model.train()
    sampler = goals.BatchSampler(data.train_inputs, data.train_targets, batch_size, seed=seed)
    return Problem(f"digits/{model_name}", model, sampler, batch_size)


def cifar_shaped_tensors(examples: int, seed: int = 0, device: str = "cpu",
                         num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Random normalised 3x32x32 images and labels: CIFAR's shapes without CIFAR's files."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(examples, 3, 32, 32, generator=generator)
    targets = torch.randint(0, num_classes, (examples,), generator=generator)
    return inputs.to(device), targets.to(device)


def cifar_augmentation() -> RandomCropFlip:
    """The CIFAR training augmentation of :mod:`goals.data` (4-pixel crop, flip)."""
    # Fill value of a black pixel after CIFAR-10 normalisation, as goals.data uses it.
    from goals.data import CIFAR_STATS

    mean, std = CIFAR_STATS["cifar10"]
    return RandomCropFlip(padding=4, fill=[-m / s for m, s in zip(mean, std)])


def cifar_problem(model_name: str, batch_size: int, width: float = 1.0, examples: int = 5000,
                  seed: int = 0, device: str = "cpu", augment: bool = True) -> Problem:
    """A CIFAR-shaped random tensor set (with the CIFAR augmentation) and a CIFAR model."""
    inputs, targets = cifar_shaped_tensors(examples, seed=seed, device=device)
    torch.manual_seed(seed)
    model = build_model(model_name, 10, 3, 32, width=width).to(device)
    model.train()
    transform = cifar_augmentation() if augment else None
    sampler = goals.BatchSampler(inputs, targets, batch_size, seed=seed, transform=transform)
    return Problem(f"cifar-shaped/{model_name}", model, sampler, batch_size)


def closure_for(problem: Problem, mbss: str = "dynamic",
                autocast_dtype: torch.dtype | None = None) -> goals.MiniBatchClosure:
    """The cross-entropy closure the engine uses, over the problem's sampler."""
    return goals.make_closure(problem.model, F.cross_entropy, problem.sampler, mbss=mbss,
                              autocast_dtype=autocast_dtype)


def percent(value: float) -> str:
    """``0.0183`` -> ``"1.8%"``."""
    return f"{100 * value:.1f}%"


def goals_and_bare_blocks(optimizer: Any, closure: Callable[[], Any], steps: int,
                          warmup: int) -> tuple[Callable[[], int], Callable[[], int], int]:
    """Warm ``optimizer`` up, then return a block of ``steps`` GOALS steps, a block of bare FEs
    sized to about as many FEs, and that FE count (each block returns the FEs it made)."""
    for _ in range(warmup):
        optimizer.step(closure)
    fe_per_step = max(1.0, optimizer.total_evaluations / max(warmup, 1))
    calls = max(1, round(steps * fe_per_step))

    def goals_block() -> int:
        before = optimizer.total_evaluations
        for _ in range(steps):
            optimizer.step(closure)
        return optimizer.total_evaluations - before

    def bare_block() -> int:
        import torch

        with torch.enable_grad():
            for _ in range(calls):
                closure()
        return calls

    return goals_block, bare_block, calls


def parse_cpu_arguments(description: str, argv: list[str] | None) -> Any:
    """Parse ``--quick``, ``--threads`` and ``--clock`` of a CPU benchmark and apply the last two.

    Args:
        description: the script's one-line description.
        argv: the command line (None: ``sys.argv``).
    """
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="time with process CPU time (default; robust to other load) or "
                             "wall time")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    use_clock(args.clock)
    return args
