"""The 11 learning-rate strategies of the comparison, each usable with each search direction.

A *strategy* decides the learning rate (step size) of every iteration; a *direction* (``sgd``,
``rmsprop``, ``adam``) decides where the step goes. :func:`build_strategy` turns a pair into a
:class:`Strategy`, which the run loop drives the same way for all of them::

    strategy = build_strategy("cosine", "adam", model.parameters(), budget_fe=2000)
    closure = goals.make_closure(model, loss_fn, sampler, mbss=strategy.mbss)
    info = strategy.step(closure)          # one iteration; info["step_size"], info["loss"], ...

Line-search strategies (``goals``, ``gos-ls``, ``gols-i``, ``gols-back``, ``sls-armijo``) are
:class:`goals.GOALS` with the matching ``line_search``; ``sls-armijo`` runs on a static closure
(one batch per iteration, resampled before each step), the others on a dynamic closure (a fresh
batch per FE).

Classic strategies are ``torch.optim.SGD`` / ``RMSprop`` / ``Adam`` (the search direction's own
update rule, no momentum for SGD unless overridden) with a ``torch.optim.lr_scheduler`` stepped
once per iteration. A classic iteration costs exactly one FE, so the schedules are laid out over
``budget_fe`` iterations:

================== ===========================================================================
``constant``       the recommended rate (:data:`RECOMMENDED_LR`: SGD 0.1, RMSprop 1e-3,
                   Adam 1e-3; the usual defaults of these methods)
``constant-x10``   ten times the recommended rate
``constant-x0.1``  a tenth of the recommended rate
``step-decay``     recommended rate, times ``gamma = 0.1`` at 50 % and 75 % of the budget
                   (``MultiStepLR``)
``cosine``         cosine annealing from the recommended rate to ``eta_min = 0`` at the end of
                   the budget (``CosineAnnealingLR``)
``cosine-restarts`` cosine annealing with warm restarts (``CosineAnnealingWarmRestarts``) with
                   ``restart_cycles = 3`` cycles whose lengths double (``restart_mult = 2``),
                   so the three cycles (1/7, 2/7, 4/7 of the budget) end with the budget [ours:
                   the paper's cycle lengths are not public]
================== ===========================================================================

Overrides (the ``optimizer`` mapping of a run configuration) go to the optimizer's constructor:
for line searches every keyword of :class:`goals.GOALS` except ``direction``, ``line_search`` and
``running_stats``; for classic strategies the keywords of the torch optimizer (``lr`` replaces the
recommended rate before the x10 / x0.1 factor, ``momentum``, ``weight_decay``, ``betas`` ...) plus
the schedule's own: ``milestones`` (fractions of the budget), ``gamma``, ``eta_min``,
``restart_cycles``, ``restart_mult``. Unknown keys raise :class:`ValueError` naming the key.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

import goals
from goals.labels import DIRECTIONS, STRATEGIES

logger = logging.getLogger(__name__)

#: Recommended (default) learning rate of each direction's classic optimizer.
RECOMMENDED_LR: dict[str, float] = {"sgd": 0.1, "rmsprop": 1.0e-3, "adam": 1.0e-3}

_TORCH_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
}

#: Schedule options of the classic strategies and their defaults.
SCHEDULE_DEFAULTS: dict[str, Any] = {
    "milestones": [0.5, 0.75],
    "gamma": 0.1,
    "eta_min": 0.0,
    "restart_cycles": 3,
    "restart_mult": 2,
}

#: GOALS keywords a configuration may not set (the run loop or the strategy sets them).
_RESERVED_GOALS_KEYS = ("self", "params", "direction", "line_search", "running_stats")


@dataclass(frozen=True)
class StrategySpec:
    """What a strategy is made of.

    Attributes:
        name: strategy id (:data:`goals.labels.STRATEGIES`).
        line_search: :class:`goals.GOALS` ``line_search`` value, or ``None`` for a classic one.
        lr_factor: factor on the recommended learning rate (classic only).
        schedule: ``"constant"``, ``"step"``, ``"cosine"`` or ``"cosine-restarts"`` (classic
            only).
        mbss: closure policy the strategy needs, ``"dynamic"`` or ``"static"``.
    """

    name: str
    line_search: str | None = None
    lr_factor: float = 1.0
    schedule: str | None = None
    mbss: str = "dynamic"

    @property
    def is_line_search(self) -> bool:
        """Whether the step size comes from a line search."""
        return self.line_search is not None


#: Registry of the 11 strategies, in :data:`goals.labels.STRATEGIES` order.
STRATEGY_SPECS: dict[str, StrategySpec] = {
    spec.name: spec
    for spec in (
        StrategySpec("goals", line_search="goals"),
        StrategySpec("gos-ls", line_search="gos-ls"),
        StrategySpec("gols-i", line_search="gols-i"),
        StrategySpec("gols-back", line_search="gols-back"),
        StrategySpec("sls-armijo", line_search="armijo", mbss="static"),
        StrategySpec("constant", schedule="constant"),
        StrategySpec("constant-x10", lr_factor=10.0, schedule="constant"),
        StrategySpec("constant-x0.1", lr_factor=0.1, schedule="constant"),
        StrategySpec("step-decay", schedule="step"),
        StrategySpec("cosine", schedule="cosine"),
        StrategySpec("cosine-restarts", schedule="cosine-restarts"),
    )
}
assert tuple(STRATEGY_SPECS) == STRATEGIES, "registry must follow goals.labels.STRATEGIES"


class Strategy:
    """One strategy on one direction, driven one iteration at a time.

    Attributes:
        name: strategy id.
        direction: direction id.
        mbss: closure policy the strategy needs (``"dynamic"`` or ``"static"``).
        optimizer: the underlying ``torch.optim.Optimizer`` (a :class:`goals.GOALS` for line
            searches).
    """

    name: str
    direction: str
    mbss: str
    optimizer: torch.optim.Optimizer

    def step(self, closure: Any) -> dict[str, Any]:
        """Run one iteration with ``closure`` and return its diagnostics.

        Returns:
            ``loss`` (float, at the start point), ``step_size`` (the step applied),
            ``growths``, ``refinements``, ``criterion_met`` (``None`` for classic strategies),
            ``fallback``.
        """
        raise NotImplementedError


class ScheduledStrategy(Strategy):
    """A torch optimizer with a learning-rate scheduler stepped after every iteration."""

    def __init__(self, name: str, direction: str, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> None:
        self.name, self.direction, self.mbss = name, direction, "dynamic"
        self.optimizer, self.scheduler = optimizer, scheduler

    def step(self, closure: Any) -> dict[str, Any]:
        step_size = float(self.optimizer.param_groups[0]["lr"])
        loss = self.optimizer.step(closure)
        if self.scheduler is not None:
            self.scheduler.step()
        return {"loss": float(loss), "step_size": step_size, "growths": 0, "refinements": 0,
                "criterion_met": None, "fallback": False}


class LineSearchStrategy(Strategy):
    """A :class:`goals.GOALS` optimizer; static closures are resampled before every step."""

    def __init__(self, name: str, direction: str, optimizer: goals.GOALS, mbss: str) -> None:
        self.name, self.direction, self.mbss = name, direction, mbss
        self.optimizer = optimizer

    def step(self, closure: Any) -> dict[str, Any]:
        if self.mbss == "static":
            closure.resample()
        loss = self.optimizer.step(closure)
        record = self.optimizer.last_record
        return {
            "loss": float(loss),
            "step_size": float(record.get("step_size") or 0.0),
            "growths": int(record.get("growths") or 0),
            "refinements": int(record.get("refinements") or 0),
            "criterion_met": bool(record.get("criterion_met")),
            "fallback": bool(record.get("fallback")),
        }


def allowed_overrides(strategy: str, direction: str) -> tuple[str, ...]:
    """Names a configuration's ``optimizer`` mapping may set for this strategy and direction."""
    spec = _spec(strategy)
    _check_direction(direction)
    if spec.is_line_search:
        names = inspect.signature(goals.GOALS.__init__).parameters
        return tuple(name for name in names if name not in _RESERVED_GOALS_KEYS)
    names = inspect.signature(_TORCH_OPTIMIZERS[direction].__init__).parameters
    torch_names = tuple(name for name in names if name not in ("self", "params"))
    return torch_names + tuple(SCHEDULE_DEFAULTS)


def validate_overrides(strategy: str, direction: str, overrides: dict[str, Any],
                       budget_fe: int = 100) -> None:
    """Check overrides by name, then by building the strategy on a dummy parameter.

    Args:
        strategy: strategy id.
        direction: direction id.
        overrides: the ``optimizer`` mapping of a configuration.
        budget_fe: budget the schedules are laid out over.

    Raises:
        ValueError: unknown strategy, direction or override name, or a value the optimizer
            refuses; the message names the field.
    """
    allowed = allowed_overrides(strategy, direction)
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(
            f"optimizer.{unknown[0]}: unknown option for strategy {strategy!r} with direction "
            f"{direction!r}; allowed: {', '.join(allowed)}"
        )
    try:
        _dry_build(strategy, direction, budget_fe, overrides)
    except (TypeError, ValueError) as error:
        # Name the culprit: the first option that fails on its own.
        for key, value in overrides.items():
            try:
                _dry_build(strategy, direction, budget_fe, {key: value})
            except (TypeError, ValueError) as single_error:
                raise ValueError(f"optimizer.{key}: {value!r} rejected ({single_error})") \
                    from single_error
        raise ValueError(f"optimizer: {error}") from error


def _dry_build(strategy: str, direction: str, budget_fe: int, overrides: dict[str, Any]) -> None:
    build_strategy(strategy, direction, [torch.zeros(1, requires_grad=True)], budget_fe,
                   **overrides)


def build_strategy(
    strategy: str,
    direction: str,
    params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
    budget_fe: int,
    **overrides: Any,
) -> Strategy:
    """Build a strategy on a direction for ``params``.

    Args:
        strategy: one of :data:`goals.labels.STRATEGIES`.
        direction: one of :data:`goals.labels.DIRECTIONS`.
        params: parameters (or groups) to optimise.
        budget_fe: the run's FE budget; classic schedules span it.
        **overrides: optimizer and schedule options (see the module docstring). Lists are
            turned into tuples (``betas``) where the optimizer expects them.

    Returns:
        A :class:`Strategy`.

    Raises:
        ValueError: unknown strategy or direction, bad budget.
        TypeError: an option the optimizer does not accept.
    """
    spec = _spec(strategy)
    _check_direction(direction)
    if isinstance(budget_fe, bool) or not isinstance(budget_fe, int) or budget_fe < 1:
        raise ValueError(f"budget_fe must be a positive integer, got {budget_fe!r}")
    overrides = {key: tuple(value) if isinstance(value, list) and key != "milestones" else value
                 for key, value in overrides.items()}

    if spec.is_line_search:
        optimizer = goals.GOALS(params, direction=direction, line_search=spec.line_search,
                                **overrides)
        return LineSearchStrategy(spec.name, direction, optimizer, spec.mbss)

    schedule = {key: overrides.pop(key, default) for key, default in SCHEDULE_DEFAULTS.items()}
    lr = float(overrides.pop("lr", RECOMMENDED_LR[direction])) * spec.lr_factor
    optimizer = _TORCH_OPTIMIZERS[direction](params, lr=lr, **overrides)
    scheduler = _scheduler(spec.schedule, optimizer, budget_fe, schedule)
    return ScheduledStrategy(spec.name, direction, optimizer, scheduler)


def _scheduler(kind: str | None, optimizer: torch.optim.Optimizer, budget_fe: int,
               options: dict[str, Any]) -> torch.optim.lr_scheduler.LRScheduler | None:
    schedulers = torch.optim.lr_scheduler
    if kind == "constant":
        return None
    if kind == "step":
        fractions = options["milestones"]
        if not all(0 < float(f) < 1 for f in fractions):
            raise ValueError(f"milestones must be fractions of the budget in (0, 1), got "
                             f"{fractions}")
        milestones = sorted({max(1, round(float(f) * budget_fe)) for f in fractions})
        return schedulers.MultiStepLR(optimizer, milestones=milestones, gamma=options["gamma"])
    if kind == "cosine":
        return schedulers.CosineAnnealingLR(optimizer, T_max=budget_fe, eta_min=options["eta_min"])
    if kind == "cosine-restarts":
        cycles, mult = int(options["restart_cycles"]), int(options["restart_mult"])
        if cycles < 1 or mult < 1:
            raise ValueError(f"restart_cycles and restart_mult must be >= 1, got {cycles}, {mult}")
        # First cycle length so that cycles of lengths t0, t0 * mult, ... fill the budget.
        total_units = sum(mult**k for k in range(cycles))
        first = max(1, math.ceil(budget_fe / total_units))
        return schedulers.CosineAnnealingWarmRestarts(optimizer, T_0=first, T_mult=mult,
                                                      eta_min=options["eta_min"])
    raise ValueError(f"unknown schedule {kind!r}")


def _spec(strategy: str) -> StrategySpec:
    if strategy not in STRATEGY_SPECS:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    return STRATEGY_SPECS[strategy]


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; expected one of "
                         f"{', '.join(DIRECTIONS)}")
