"""Look along one search direction of a real network: ``F``, ``F'`` and where line searches land.

The notebook on line-search behaviour uses this module to show what the method rests on: along a
line ``x + a d`` the mini-batch loss ``F(a)`` is smooth under static MBSS (one batch held for the
whole line) and jumps under dynamic MBSS (a fresh batch per evaluation), while the sign change of
the directional derivative ``F'(a)`` stays where it is. :class:`LineProbe` evaluates both along a
grid of step sizes and runs the pure line searches of :mod:`goals.line_search` from the same point
and direction, so their accepted steps and costs can be compared directly.

FE accounting of :meth:`LineProbe.search`, the same as :class:`goals.GOALS` charges:

- dynamic MBSS: ``F'(0)`` comes from the gradient reused from the previous step (no FE); the
  search's own evaluations count; one more FE is charged when the accepted point was not the last
  point evaluated (the optimizer evaluates there to get the next gradient);
- static MBSS: one FE for ``F'(0)`` on the newly drawn batch, then as above;
- SLS-Armijo: one FE at the start on its batch plus forward-only evaluations (counted apart).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from goals.closures import BatchSampler, MiniBatchClosure, make_closure
from goals.line_search import (
    STEP_SIZE_MAX,
    STEP_SIZE_MIN,
    SearchResult,
    armijo_search,
    goals_search,
    gols_back_search,
    gols_i_search,
    gos_ls_search,
)

logger = logging.getLogger(__name__)

#: Strategy id -> pure search function, for the line searches a probe can run.
SEARCHES: dict[str, Callable[..., tuple[float, SearchResult]]] = {
    "goals": goals_search,
    "gos-ls": gos_ls_search,
    "gols-i": gols_i_search,
    "gols-back": gols_back_search,
    "sls-armijo": armijo_search,
}

MBSS_MODES: tuple[str, ...] = ("static", "dynamic")


class LineProbe:
    """Evaluate a model's mini-batch loss and directional derivative along ``x + a d``.

    The probe remembers the parameters ``x`` at construction and always moves to
    ``x + a d`` from that saved copy; :meth:`restore` puts the model back at ``x``.

    Args:
        model: the network, in the mode it should be evaluated in (normally ``train()``).
        loss_fn: ``(outputs, targets) -> scalar loss``.
        sampler: where mini-batches come from.
        max_update_norm: the largest step is ``min(1e7, max_update_norm / ||d||)``, as in
            :class:`goals.GOALS` [lineage: 1.0].
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 sampler: BatchSampler, max_update_norm: float = 1.0) -> None:
        self.model, self.loss_fn, self.sampler = model, loss_fn, sampler
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the model has no trainable parameters")
        self.start = [p.detach().clone() for p in self.params]
        self.direction: list[Tensor] | None = None
        self.direction_batch: tuple[Tensor, Tensor] | None = None
        self.loss_at_zero = math.nan
        self.derivative_at_zero = math.nan
        self.max_update_norm = float(max_update_norm)
        self.evaluations = 0
        self.forward_evaluations = 0

    # -----------------------------------------------------------------------------------------
    # The line

    def closure(self, mbss: str) -> MiniBatchClosure:
        """A closure over the probe's model and sampler.

        A static closure holds the batch the current direction was computed on (static MBSS: one
        batch per iteration, for the direction and the whole line search); a dynamic one draws a
        fresh batch on every call.
        """
        closure = make_closure(self.model, self.loss_fn, self.sampler, mbss=mbss)
        if mbss == "static":
            closure.last_batch = self.direction_batch
        return closure

    def use_steepest_descent(self) -> float:
        """Draw a fresh batch at ``x`` and set ``d = -g`` from it (one FE).

        This is one iteration's start under either MBSS mode: the gradient of the batch sets the
        direction, and ``F'(0) = -||g||^2`` is the derivative every search starts from (under
        dynamic MBSS it is the gradient reused from the previous step).

        Returns:
            ``F'(0)``.
        """
        self._move(0.0)
        closure = make_closure(self.model, self.loss_fn, self.sampler, mbss="dynamic")
        self.loss_at_zero = float(closure())
        self.evaluations += 1
        self.direction_batch = closure.last_batch
        grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
                 for p in self.params]
        self.direction = [-g for g in grads]
        self.derivative_at_zero = -sum(float(torch.vdot(g.flatten(), g.flatten()))
                                       for g in grads)
        return self.derivative_at_zero

    @property
    def step_size_max(self) -> float:
        """Largest step along the current direction (update-norm bound)."""
        norm = math.sqrt(sum(float(torch.vdot(d.flatten(), d.flatten()))
                             for d in self._require_direction()))
        if norm == 0:
            return STEP_SIZE_MAX
        return max(STEP_SIZE_MIN, min(STEP_SIZE_MAX, self.max_update_norm / norm))

    def evaluate(self, step_size: float, closure: MiniBatchClosure) -> tuple[float, float]:
        """``(F(a), F'(a))`` at ``a = step_size`` on the closure's batch (one FE)."""
        direction = self._require_direction()
        self._move(step_size)
        loss = float(closure())
        self.evaluations += 1
        derivative = sum(float(torch.vdot(d.flatten(), p.grad.flatten()))
                         for d, p in zip(direction, self.params) if p.grad is not None)
        if not (math.isfinite(loss) and math.isfinite(derivative)):
            return loss, math.nan
        return loss, derivative

    def loss_at(self, step_size: float, closure: MiniBatchClosure) -> float:
        """``F(a)`` only (forward pass, no gradient)."""
        self._move(step_size)
        self.forward_evaluations += 1
        return float(closure(backward=False))

    def restore(self) -> None:
        """Put the model back at the start point ``x``."""
        self._move(0.0)
        self.model.zero_grad(set_to_none=True)

    # -----------------------------------------------------------------------------------------
    # What the notebook draws

    def profile(self, step_sizes: Iterable[float], mbss: str) -> pd.DataFrame:
        """``F`` and ``F'`` on a grid of step sizes.

        Args:
            step_sizes: the grid.
            mbss: "static" (one batch for the whole grid) or "dynamic" (a batch per point).

        Returns:
            Frame with columns ``mbss``, ``step_size``, ``F``, ``dF``.
        """
        _check_mbss(mbss)
        closure = self.closure(mbss)
        rows = []
        for step_size in step_sizes:
            loss, derivative = self.evaluate(float(step_size), closure)
            rows.append({"mbss": mbss, "step_size": float(step_size), "F": loss,
                         "dF": derivative})
        self.restore()
        return pd.DataFrame(rows)

    def search(self, strategy: str, mbss: str, initial_step: float,
               constants: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run one line search from ``x`` along the current direction.

        Args:
            strategy: "goals", "gos-ls", "gols-i", "gols-back" or "sls-armijo".
            mbss: "static" (every evaluation on the direction's batch) or "dynamic" (a fresh
                batch per evaluation). SLS-Armijo under dynamic MBSS compares losses of different
                batches, which the method is not made for; the notebook shows it on purpose.
            initial_step: first trial (the previous accepted step in training).
            constants: keyword arguments of the search (e.g. ``{"tolerance": 0.5}``).

        Returns:
            A record: strategy, mbss, step_size, fe (FEs charged as the optimizer would, see the
            module docstring), forward_evaluations, growths, refinements, criterion_met,
            hit_min, hit_max.
        """
        _check_mbss(mbss)
        if strategy not in SEARCHES:
            raise ValueError(f"unknown line search {strategy!r}; expected one of "
                             f"{list(SEARCHES)}")
        self._require_direction()
        closure = self.closure(mbss)
        options = {"step_size_min": STEP_SIZE_MIN, "step_size_max": self.step_size_max,
                   **dict(constants or {})}
        derivative_at_zero = self.derivative_at_zero

        def derivative(step_size: float) -> float:
            return self.evaluate(step_size, closure)[1]

        if strategy == "sls-armijo":
            step, result = armijo_search(lambda a: self.loss_at(a, closure), self.loss_at_zero,
                                         derivative_at_zero, initial_step, **options)
        elif strategy == "gols-back":
            step, result = gols_back_search(derivative, derivative_at_zero, **options)
        else:
            step, result = SEARCHES[strategy](derivative, derivative_at_zero, initial_step,
                                              **options)
        # FEs as the optimizer charges them (module docstring).
        fe = result.evaluations + (mbss == "static" or strategy == "sls-armijo")
        if strategy != "sls-armijo" and step > 0 and result.last_step != step:
            fe += 1
        self.restore()
        return {"strategy": strategy, "mbss": mbss, "step_size": step, "fe": int(fe),
                "forward_evaluations": result.forward_evaluations, "growths": result.growths,
                "refinements": result.refinements, "criterion_met": result.criterion_met,
                "hit_min": result.hit_min, "hit_max": result.hit_max}

    def repeated_searches(self, strategies: Sequence[str], modes: Sequence[str], repeats: int,
                          initial_step: float,
                          constants: Mapping[str, Mapping[str, Any]] | None = None
                          ) -> pd.DataFrame:
        """Repeat one iteration's line searches ``repeats`` times from the same point ``x``.

        Each repeat draws a fresh batch for the direction (:meth:`use_steepest_descent`), then
        runs every strategy under every MBSS mode along that direction. The spread of the
        accepted steps over repeats is the spread a training run meets at this point.

        Args:
            strategies: line searches to run.
            modes: MBSS modes.
            repeats: searches per strategy and mode.
            initial_step: first trial of every search.
            constants: per-strategy keyword arguments.

        Returns:
            One row per search (see :meth:`search`) with a ``repeat`` column.
        """
        rows = []
        for repeat in range(repeats):
            self.use_steepest_descent()
            for mode in modes:
                for strategy in strategies:
                    record = self.search(strategy, mode, initial_step,
                                         constants=(constants or {}).get(strategy))
                    rows.append({"repeat": repeat, **record})
        return pd.DataFrame(rows)

    # -----------------------------------------------------------------------------------------

    def _require_direction(self) -> list[Tensor]:
        if self.direction is None:
            raise RuntimeError("no direction yet: call use_steepest_descent() first")
        return self.direction

    @torch.no_grad()
    def _move(self, step_size: float) -> None:
        torch._foreach_copy_(self.params, self.start)
        if step_size != 0.0:
            torch._foreach_add_(self.params, self._require_direction(), alpha=step_size)


def _check_mbss(mbss: str) -> None:
    if mbss not in MBSS_MODES:
        raise ValueError(f"mbss={mbss!r}; choose 'static' or 'dynamic'")


def train_with_goals(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                     sampler: BatchSampler, fe_budget: int, direction: str = "sgd",
                     line_search: str = "goals", **constants: Any) -> dict[str, Any]:
    """Train ``model`` with :class:`goals.GOALS` until ``fe_budget`` FEs are spent.

    A small loop for the notebooks (sensitivity to constants, warm-up before probing a line);
    the experiment engine has the full one with evaluations and records.

    Args:
        model: the network (trained in place).
        loss_fn: ``(outputs, targets) -> scalar loss``.
        sampler: where mini-batches come from.
        fe_budget: stop once this many FEs are spent.
        direction: "sgd", "rmsprop" or "adam".
        line_search: "goals", "gos-ls", "gols-i", "gols-back" or "armijo".
        **constants: further :class:`goals.GOALS` arguments.

    Returns:
        ``{"optimizer": ..., "iterations": ..., "fe": ..., "step_sizes": [...]}``.
    """
    from goals.optimizer import GOALS

    optimizer = GOALS(model.parameters(), direction=direction, line_search=line_search,
                      **constants)
    mbss = "static" if line_search == "armijo" else "dynamic"
    closure = make_closure(model, loss_fn, sampler, mbss=mbss)
    step_sizes = []
    while optimizer.total_evaluations < fe_budget:
        if mbss == "static":
            closure.resample()
        optimizer.step(closure)
        step_sizes.append(float(optimizer.last_record["step_size"]))
    return {"optimizer": optimizer, "iterations": len(step_sizes),
            "fe": optimizer.total_evaluations, "step_sizes": step_sizes}


@torch.no_grad()
def full_loss(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], inputs: Tensor,
              targets: Tensor, batch_size: int = 1024) -> tuple[float, float]:
    """Mean loss and error (1 - accuracy) of ``model`` on a whole data set, in eval mode."""
    was_training = model.training
    model.eval()
    total_loss, wrong = 0.0, 0
    for start in range(0, len(inputs), batch_size):
        outputs = model(inputs[start:start + batch_size])
        batch_targets = targets[start:start + batch_size]
        total_loss += float(loss_fn(outputs, batch_targets)) * len(batch_targets)
        wrong += int((outputs.argmax(dim=1) != batch_targets).sum())
    model.train(was_training)
    return total_loss / len(inputs), wrong / len(inputs)
