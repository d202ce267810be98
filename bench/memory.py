"""Optimizer memory: state bytes against parameter bytes, per direction, and per-step allocations.

1. State. After a few steps every tensor held in ``optimizer.state`` is counted (each storage
   once) and divided by the bytes of the parameters. GOALS keeps, per parameter, the direction's
   own moments (SGD: none, or a momentum buffer; RMSprop: one; Adam: two) plus two copies of
   parameter size: the direction and the start gradient, whose buffer holds the start point
   during the line search. Target: state <= (the direction's own buffers + 2) parameter copies.
   ``torch.optim``'s state for the same direction is listed for comparison. BatchNorm snapshots
   (``running_stats``) live outside ``optimizer.state`` and are listed apart.
2. Stability. The state tensors' storages must be the same objects before and after more steps:
   buffers are allocated once, not per step.
3. Per-step allocations. With a closure that allocates nothing (the gradient of a quadratic,
   written into preallocated ``.grad`` tensors), every byte allocated during ``step()`` is the
   optimizer's own. The torch profiler (``profile_memory=True``) sums them per operator. Target:
   nothing of parameter size, i.e. per-step allocations well under 1 % of the parameter bytes.

    python bench/memory.py            # README numbers (seconds)
    python bench/memory.py --quick    # seconds: digits MLP only
"""

from __future__ import annotations

import argparse
import sys
import warnings

import torch
from benchlib import (
    Problem,
    cifar_problem,
    closure_for,
    digits_problem,
    quick_settings,
    result_line,
    set_threads,
)

import goals

#: (label, direction, GOALS options, parameter copies of the direction's own state)
DIRECTIONS = (
    ("sgd", "sgd", {}, 0),
    ("sgd+momentum", "sgd", {"momentum": 0.9}, 1),
    ("rmsprop", "rmsprop", {}, 1),
    ("adam", "adam", {}, 2),
)
ALLOCATION_TARGET = 0.01


def tensor_bytes(value: object, seen: set[int]) -> int:
    """Bytes of all tensors inside ``value`` (dicts, lists, tuples), each storage once."""
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        if storage.data_ptr() in seen:
            return 0
        seen.add(storage.data_ptr())
        return storage.nbytes()
    if isinstance(value, dict):
        return sum(tensor_bytes(item, seen) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(item, seen) for item in value)
    return 0


def state_storages(optimizer: torch.optim.Optimizer) -> set[int]:
    """Data pointers of every parameter-state tensor."""
    pointers: set[int] = set()
    tensor_bytes(dict(optimizer.state), pointers)
    return pointers


def torch_state_bytes(problem: Problem, direction: str, options: dict) -> int:
    """State bytes of the direction's own torch optimizer after two steps."""
    kinds = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}
    optimizer = kinds[direction](problem.model.parameters(), lr=1e-7, **options)
    closure = closure_for(problem)
    for _ in range(2):
        optimizer.step(closure)
    return tensor_bytes(dict(optimizer.state), set())


def state_row(build, direction: str, options: dict) -> dict[str, float]:
    """State and stability of GOALS on one model."""
    problem = build()
    parameter_bytes = sum(p.numel() * p.element_size() for p in problem.model.parameters())
    closure = closure_for(problem)
    optimizer = goals.GOALS(problem.model.parameters(), direction=direction,
                            running_stats=goals.running_stat_buffers(problem.model), **options)
    for _ in range(3):
        optimizer.step(closure)
    before = state_storages(optimizer)
    for _ in range(3):
        optimizer.step(closure)
    after = state_storages(optimizer)
    state = tensor_bytes(dict(optimizer.state), set())
    snapshots = tensor_bytes(optimizer._stat_snapshots, set())
    return {
        "parameter_bytes": parameter_bytes,
        "copies": state / parameter_bytes,
        "snapshot_bytes": snapshots,
        "stable": before == after,
        "torch_copies": torch_state_bytes(build(), direction, options) / parameter_bytes,
    }


class QuadraticClosure:
    """Gradient of ``0.5 ||x - target||^2`` written into preallocated ``.grad``; no allocation."""

    mbss = "dynamic"

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params
        generator = torch.Generator().manual_seed(0)
        self.targets = [torch.randn(p.shape, generator=generator) for p in params]
        for param in params:
            param.grad = torch.zeros_like(param)
        self.grads = [param.grad for param in params]
        self.loss = torch.zeros(())
        self.evaluations = 0

    def __call__(self, backward: bool = True) -> torch.Tensor:
        for param, grad in zip(self.params, self.grads):
            # A caller that set the gradients to None gets the same buffers back.
            param.grad = grad
        with torch.no_grad():
            torch._foreach_copy_(self.grads, self.params)
            torch._foreach_sub_(self.grads, self.targets)
            self.loss.fill_(1.0)
        self.evaluations += 1
        return self.loss


def allocation_row(build, direction: str, options: dict, steps: int = 5) -> dict[str, object]:
    """Bytes allocated by ``steps`` GOALS steps around an allocation-free closure."""
    from torch.profiler import ProfilerActivity, profile

    params = [p.detach().clone().requires_grad_(True) for p in build().model.parameters()]
    parameter_bytes = sum(p.numel() * p.element_size() for p in params)
    closure = QuadraticClosure(params)
    optimizer = goals.GOALS(params, direction=direction, **options)
    for _ in range(3):
        optimizer.step(closure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
            for _ in range(steps):
                optimizer.step(closure)
    by_operator = {event.key: event.self_cpu_memory_usage / steps
                   for event in profiler.key_averages() if event.self_cpu_memory_usage > 0}
    total = sum(by_operator.values())
    largest = max(by_operator, key=by_operator.get) if by_operator else "-"
    return {"share": total / parameter_bytes, "bytes": total, "largest": largest,
            "largest_bytes": by_operator.get(largest, 0.0)}


def models(quick: bool) -> list[tuple[str, object]]:
    settings, _ = quick_settings()
    batch, width = settings["batch_size"], settings["width"]
    if quick:
        return [("digits/mlp", lambda: digits_problem("mlp", 16, width=0.5))]
    found = [(f"digits/{name}", (lambda name=name: digits_problem(name, batch, width=width)))
             for name in settings["models"] if name in ("mlp", "cnn")]
    found.append(("cifar-shaped/3c3d", lambda: cifar_problem("3c3d", 32, examples=256)))
    found.append(("cifar-shaped/resnet18 w0.25",
                  lambda: cifar_problem("resnet18", 16, width=0.25, examples=256)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    args = parser.parse_args(argv)
    set_threads(1)

    print(f"{'model':28} {'direction':13} {'param KB':>9} {'state/params':>12} {'target':>6} "
          f"{'torch.optim':>11} {'BN snap KB':>10} {'stable':>6}")
    state_ok, stable_ok, worst = True, True, (0.0, "")
    cases = models(args.quick)
    for label, build in cases:
        for name, direction, options, own in DIRECTIONS:
            row = state_row(build, direction, options)
            target = own + 2
            state_ok &= row["copies"] <= target + 1e-9
            stable_ok &= row["stable"]
            if row["copies"] - target >= worst[0] - 1e-12 or not worst[1]:
                worst = (row["copies"] - target, f"{label}/{name} {row['copies']:.2f}<={target}")
            print(f"{label:28} {name:13} {row['parameter_bytes'] / 1024:>9.1f} "
                  f"{row['copies']:>12.2f} {target:>6} {row['torch_copies']:>11.2f} "
                  f"{row['snapshot_bytes'] / 1024:>10.2f} {row['stable']!s:>6}", flush=True)

    print(f"\nper-step allocations with an allocation-free closure (target < "
          f"{100 * ALLOCATION_TARGET:g}% of parameter bytes)")
    print(f"{'model':28} {'direction':13} {'bytes/step':>10} {'of params':>9}  largest operator")
    allocation_ok, worst_allocation = True, (0.0, "")
    for label, build in cases[:2]:
        for name, direction, options, _ in DIRECTIONS:
            row = allocation_row(build, direction, options)
            allocation_ok &= row["share"] < ALLOCATION_TARGET
            if row["share"] >= worst_allocation[0]:
                where = f"{label}/{name}, mostly {row['largest']} {row['largest_bytes']:.0f} B/step"
                worst_allocation = (row["share"], where)
            print(f"{label:28} {name:13} {row['bytes']:>10.0f} {100 * row['share']:>8.2f}%  "
                  f"{row['largest']} ({row['largest_bytes']:.0f} B)", flush=True)

    allocation_text = (f"per-step allocations {100 * worst_allocation[0]:.2f}% of parameter bytes "
                       f"({worst_allocation[1]}) {'PASS' if allocation_ok else 'MISS'}")
    result_line("state_copies_over_target", f"{worst[0]:+.2f}", "<=0", state_ok and stable_ok,
                f"(parameter copies in optimizer.state minus the direction's own + 2; closest: "
                f"{worst[1]}; buffers stable across steps: {stable_ok}; {allocation_text})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
