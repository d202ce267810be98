"""GPU check: FE throughput of GOALS against a bare forward/backward loop, ResNet-18 on one GPU.

The model is the paper profile's ResNet-18 with the CIFAR stem (:func:`goals.models.build_model`,
``"resnet18"``), trained on CIFAR-10-shaped random tensors that live on the GPU, with the CIFAR
augmentation of :mod:`goals.data` applied on the GPU, through the engine's closure (a fresh batch
per FE). For each setting

- ``fp32``: float32, contiguous (NCHW) tensors;
- ``bf16``: ``goals.make_closure(..., autocast_dtype=torch.bfloat16)``;
- ``bf16+cl``: bf16 autocast and ``channels_last`` model and batches;

blocks of GOALS steps (Adam direction) alternate with blocks of as many bare FEs (closure calls:
sample, zero grads, forward, backward), the GPU synchronised at block ends, 5 rounds. Reported:
bare FE throughput, GOALS FE throughput, their median ratio (target >= 0.97, i.e. <= 3 %
overhead; GOALS synchronises with the host once per trial, a bare loop never), the speed-up of
each setting over ``fp32`` and the peak memory of one GOALS step against one bare FE.

Meant to finish in well under 5 minutes on one modern GPU; a time budget (``--budget-seconds``)
skips the remaining settings if a slow GPU would take longer. On a machine without CUDA it says
so and exits with status 0 without measuring anything.

    python bench/gpu_check.py                        # one GPU (cuda:0)
    python bench/gpu_check.py --device cuda:1
    python bench/gpu_check.py --device cpu --quick   # dry run of the script on the CPU (seconds)
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from benchlib import (
    Problem,
    cifar_augmentation,
    cifar_shaped_tensors,
    closure_for,
    goals_and_bare_blocks,
    interleave,
    machine,
    median,
    median_ratio,
    percent,
    result_line,
)

import goals

TARGET = 0.97
SETTINGS = (
    ("fp32", None, False),
    ("bf16", torch.bfloat16, False),
    ("bf16+cl", torch.bfloat16, True),
)


def cuda_missing(device: str) -> str | None:
    """Why ``device`` cannot be used, or ``None`` when it can."""
    if not device.startswith("cuda"):
        return None
    if not torch.cuda.is_available():
        return ("no CUDA device is available (torch.cuda.is_available() is False; torch "
                f"{torch.__version__}, built for CUDA {torch.version.cuda})")
    index = torch.device(device).index or 0
    if index >= torch.cuda.device_count():
        return f"{device} does not exist: {torch.cuda.device_count()} CUDA device(s) visible"
    return None


def build(device: str, width: float, batch_size: int, examples: int, channels_last: bool
          ) -> Problem:
    """ResNet-18 (CIFAR stem) and a sampler over CIFAR-shaped tensors on ``device``."""
    from goals.models import build_model

    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    inputs, targets = cifar_shaped_tensors(examples, seed=0, device=device)
    torch.manual_seed(0)
    model = build_model("resnet18", 10, 3, 32, width=width).to(device,
                                                               memory_format=memory_format)
    model.train()
    augment = cifar_augmentation()

    def transform(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return augment(batch, generator).contiguous(memory_format=memory_format)

    sampler = goals.BatchSampler(inputs, targets, batch_size, seed=0, transform=transform)
    return Problem("cifar-shaped/resnet18", model, sampler, batch_size)


def measure(device: str, setting: tuple, width: float, batch_size: int, examples: int,
            repeats: int, steps: int) -> dict[str, float]:
    """Alternate GOALS and bare blocks for one setting; throughputs, ratio and peak memory."""
    _, dtype, channels_last = setting
    problem = build(device, width, batch_size, examples, channels_last)
    closure = closure_for(problem, autocast_dtype=dtype)
    optimizer = goals.GOALS(problem.model.parameters(), direction="adam",
                            running_stats=goals.running_stat_buffers(problem.model))
    is_cuda = device.startswith("cuda")
    synchronize = (lambda: torch.cuda.synchronize(device)) if is_cuda else None

    # Warm-up: kernel selection (cudnn.benchmark) and the step size's growth from 1e-8.
    goals_block, bare_block, _ = goals_and_bare_blocks(optimizer, closure, steps, warmup=3)

    rounds = interleave([goals_block, bare_block], repeats, synchronize)
    row = {
        "bare_fe_s": median([1.0 / timings[1].per_unit for timings in rounds]),
        "goals_fe_s": median([1.0 / timings[0].per_unit for timings in rounds]),
        "ratio": median_ratio(rounds, 1, 0),
        "fe_per_step": sum(t[0].units for t in rounds) / (repeats * steps),
    }
    if is_cuda:
        # Peak memory of one bare FE, then of one GOALS step, from the same starting point.
        for key, action in (("bare_peak", bare_block), ("goals_peak", goals_block)):
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            action()
            torch.cuda.synchronize(device)
            row[key] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (dry run)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny ResNet-18 (width 1/8), batch 8, two rounds: a dry run")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="GOALS steps per block")
    parser.add_argument("--budget-seconds", type=float, default=240.0,
                        help="skip the remaining settings after this long")
    args = parser.parse_args(argv)

    reason = cuda_missing(args.device)
    if reason is not None:
        print(f"gpu_check: {reason}. Nothing was measured. Run this script on a machine with "
              f"an NVIDIA GPU, or try the script itself with --device cpu --quick.")
        print(f"RESULT gpu_fe_throughput_ratio=n/a target>={TARGET} SKIPPED (no GPU) | "
              f"{machine()}")
        return 0

    started = time.perf_counter()
    width, batch, examples, repeats, steps = 1.0, args.batch_size, 10_000, args.repeats, \
        args.steps
    if args.quick:
        width, batch, examples, repeats, steps = 0.125, 8, 64, 2, 1
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_num_threads(1)
    print(f"resnet18 width={width:g} batch={batch} examples={examples} device={args.device}")
    print(f"{'setting':8} {'bare FE/s':>9} {'GOALS FE/s':>10} {'ratio':>6} {'vs fp32':>7} "
          f"{'FE/step':>7} {'peak MB bare/GOALS':>18}")

    rows: dict[str, dict[str, float]] = {}
    for setting in SETTINGS:
        if time.perf_counter() - started > args.budget_seconds:
            print(f"{setting[0]:8} skipped: time budget of {args.budget_seconds:g} s used up")
            continue
        row = measure(args.device, setting, width, batch, examples, repeats, steps)
        rows[setting[0]] = row
        speedup = row["bare_fe_s"] / rows["fp32"]["bare_fe_s"] if "fp32" in rows else 1.0
        peak = (f"{row['bare_peak']:.0f}/{row['goals_peak']:.0f}" if "bare_peak" in row
                else "-")
        print(f"{setting[0]:8} {row['bare_fe_s']:>9.1f} {row['goals_fe_s']:>10.1f} "
              f"{row['ratio']:>6.3f} {speedup:>6.2f}x {row['fe_per_step']:>7.2f} {peak:>18}",
              flush=True)

    fastest = max(rows, key=lambda key: rows[key]["bare_fe_s"])
    ratio = rows[fastest]["ratio"]
    listing = ", ".join(f"{key} {value['ratio']:.3f}" for key, value in rows.items())
    result_line("gpu_fe_throughput_ratio", f"{ratio:.3f}", f">={TARGET}", ratio >= TARGET,
                f"(fastest setting {fastest}, overhead {percent(1 / ratio - 1)}; all: {listing}; "
                f"{time.perf_counter() - started:.0f} s)", device=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
