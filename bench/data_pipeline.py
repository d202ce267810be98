"""Batch sampling and augmentation time as a share of the time of one function evaluation (FE).

An FE of the engine's closure draws a fresh batch (:class:`goals.BatchSampler`: index into tensors
that already live on the device, then the augmentation, also on the device), zeroes the gradients,
runs forward and backward. This script times blocks of ``sampler.sample()`` calls against blocks
of whole FEs (which include the sampling), in rotating order, and reports

    share = (time per sample()) / (time per FE)

as the median over rounds. For augmented data it also times ``sample()`` without the
augmentation, to show what the augmentation itself costs.

Problems: the quick profile's digits MLP and CNN (no augmentation), and a CIFAR-shaped random
tensor set (5,000 images of 3x32x32) with the CIFAR augmentation of :mod:`goals.data` (4-pixel
random crop, horizontal flip) feeding the CIFAR CPU network 3c3d. Target: share <= 2 %.

    python bench/data_pipeline.py            # README numbers (about a minute on 1 thread)
    python bench/data_pipeline.py --quick    # seconds: tiny models
"""

from __future__ import annotations

import sys

import torch
from benchlib import (
    Problem,
    cifar_problem,
    closure_for,
    digits_problem,
    interleave,
    median,
    median_ratio,
    parse_cpu_arguments,
    percent,
    quick_settings,
    result_line,
)

TARGET = 0.02


def measure(problem: Problem, repeats: int, calls: int) -> dict[str, float]:
    """Rotate blocks of ``calls`` samples, samples without augmentation, and FEs."""
    closure = closure_for(problem)
    sampler = problem.sampler
    transform = sampler.transform
    with torch.enable_grad():
        for _ in range(3):
            closure()

    def sample_block() -> int:
        for _ in range(calls):
            sampler.sample()
        return calls

    def plain_block() -> int:
        sampler.transform = None
        try:
            for _ in range(calls):
                sampler.sample()
        finally:
            sampler.transform = transform
        return calls

    def fe_block() -> int:
        with torch.enable_grad():
            for _ in range(calls):
                closure()
        return calls

    blocks = [sample_block, fe_block] + ([plain_block] if transform is not None else [])
    rounds = interleave(blocks, repeats)
    row = {
        "fe_ms": 1e3 * median([timings[1].per_unit for timings in rounds]),
        "sample_ms": 1e3 * median([timings[0].per_unit for timings in rounds]),
        "share": median_ratio(rounds, 0, 1),
    }
    if transform is not None:
        row["augment_share"] = median([(t[0].per_unit - t[2].per_unit) / t[1].per_unit
                                       for t in rounds])
    return row


def problems(quick: bool) -> list[tuple[str, object, int, int]]:
    """``(label, build, repeats, calls per block)`` of this run."""
    settings, _ = quick_settings()
    batch, width = settings["batch_size"], settings["width"]
    if quick:
        return [
            ("digits/mlp (tiny)", lambda: digits_problem("mlp", 16, width=0.5), 3, 10),
            ("cifar-shaped/3c3d (tiny)",
             lambda: cifar_problem("3c3d", 16, width=0.125, examples=256), 3, 4),
        ]
    found = [(f"digits/{name} b{batch} w{width:g}",
              (lambda name=name: digits_problem(name, batch, width=width)), 15, 100)
             for name in settings["models"] if name in ("mlp", "cnn")]
    found.append(("cifar-shaped/3c3d b128 w1 +aug", lambda: cifar_problem("3c3d", 128), 7, 4))
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_cpu_arguments(__doc__.split("\n\n")[0], argv)

    print(f"{'problem':32} {'FE ms':>8} {'sample ms':>9} {'share':>6} {'augment':>7}")
    shares: dict[str, float] = {}
    for label, build, repeats, calls in problems(args.quick):
        row = measure(build(), repeats, calls)
        augment = percent(row["augment_share"]) if "augment_share" in row else "-"
        print(f"{label:32} {row['fe_ms']:>8.3f} {row['sample_ms']:>9.4f} "
              f"{percent(row['share']):>6} {augment:>7}", flush=True)
        shares[label.split()[0]] = row["share"]

    worst = max(shares, key=shares.get)
    passed = shares[worst] <= TARGET
    listing = ", ".join(f"{name} {percent(value)}" for name, value in shares.items())
    result_line("sampling_share_of_fe", percent(shares[worst]), f"<={percent(TARGET)}", passed,
                f"(worst: {worst}; all: {listing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
