"""Strategy registry: every strategy on every direction, classic schedules, overrides."""

from __future__ import annotations

import math

import pytest
import torch

import goals
from goals.labels import DIRECTIONS, LINE_SEARCH_STRATEGIES, STRATEGIES
from goals.strategies import (
    RECOMMENDED_LR,
    STRATEGY_SPECS,
    LineSearchStrategy,
    ScheduledStrategy,
    allowed_overrides,
    build_strategy,
    validate_overrides,
)

torch.set_num_threads(1)


def quadratic_closure(param, generator, mbss="dynamic"):
    """A noisy least-squares loss; the random target is drawn afresh on every call (dynamic
    MBSS) or only on ``resample()`` (static MBSS)."""

    class Closure:
        evaluations = 0
        target = None

        def __init__(self):
            self.mbss = mbss

        def resample(self):
            self.target = 1.0 + 0.1 * torch.randn(param.shape, generator=generator)

        def __call__(self, backward=True):
            if self.mbss == "dynamic" or self.target is None:
                self.resample()
            with torch.enable_grad():
                loss = 0.5 * ((param - self.target) ** 2).sum()
                if backward:
                    param.grad = None
                    loss.backward()
                    self.evaluations += 1
            return loss.detach()

    return Closure()


def learning_rates(strategy, budget):
    param = torch.zeros(3, requires_grad=True)
    built = build_strategy(strategy, "sgd", [param], budget)
    closure = quadratic_closure(param, torch.Generator().manual_seed(0))
    return [built.step(closure)["step_size"] for _ in range(budget)]


def test_registry_follows_labels():
    assert tuple(STRATEGY_SPECS) == STRATEGIES
    assert {name for name, spec in STRATEGY_SPECS.items() if spec.is_line_search} == set(
        LINE_SEARCH_STRATEGIES)
    assert [name for name, spec in STRATEGY_SPECS.items() if spec.mbss == "static"] == [
        "sls-armijo"]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_on_every_direction_descends(strategy, direction):
    torch.manual_seed(0)
    param = torch.zeros(5, requires_grad=True)
    built = build_strategy(strategy, direction, [param], budget_fe=60)
    closure = quadratic_closure(param, torch.Generator().manual_seed(1), mbss=built.mbss)
    first = built.step(closure)
    for _ in range(30):
        info = built.step(closure)
    assert set(info) == {"loss", "step_size", "growths", "refinements", "criterion_met",
                         "fallback"}
    assert math.isfinite(info["loss"]) and info["step_size"] >= 0
    assert info["loss"] < first["loss"]
    if STRATEGY_SPECS[strategy].is_line_search:
        assert isinstance(built, LineSearchStrategy)
        assert isinstance(built.optimizer, goals.GOALS)
        expected = "armijo" if strategy == "sls-armijo" else strategy
        assert built.optimizer.defaults["line_search"] == expected
        assert built.optimizer.defaults["direction"] == direction
    else:
        assert isinstance(built, ScheduledStrategy)
        assert type(built.optimizer).__name__.lower() == direction


def test_constant_rates_follow_recommendation():
    for direction, rate in RECOMMENDED_LR.items():
        for strategy, factor in (("constant", 1), ("constant-x10", 10), ("constant-x0.1", 0.1)):
            built = build_strategy(strategy, direction, [torch.zeros(1, requires_grad=True)], 10)
            assert built.optimizer.param_groups[0]["lr"] == pytest.approx(rate * factor)
    assert learning_rates("constant", 20) == [pytest.approx(0.1)] * 20


def test_step_decay_at_half_and_three_quarters():
    rates = learning_rates("step-decay", 100)
    assert rates[:50] == [pytest.approx(0.1)] * 50
    assert rates[50:75] == [pytest.approx(0.01)] * 25
    assert rates[75:] == [pytest.approx(0.001)] * 25


def test_cosine_anneals_to_zero_over_budget():
    rates = learning_rates("cosine", 100)
    assert rates[0] == pytest.approx(0.1)
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))
    assert rates[50] == pytest.approx(0.05, rel=1e-6)
    assert rates[-1] < 1e-3


def test_cosine_restarts_three_doubling_cycles():
    rates = learning_rates("cosine-restarts", 70)
    restarts = [k for k in range(1, 70) if rates[k] > rates[k - 1]]
    # Cycles of 10, 20 and 40 iterations: restarts at 10 and 30, the last cycle fills the budget.
    assert restarts == [10, 30]
    assert rates[10] == pytest.approx(0.1) and rates[30] == pytest.approx(0.1)
    assert rates[-1] < 1e-3


def test_overrides_reach_the_optimizer():
    param = [torch.zeros(1, requires_grad=True)]
    built = build_strategy("constant", "sgd", param, 10, lr=0.5, momentum=0.9)
    assert built.optimizer.param_groups[0]["lr"] == 0.5
    assert built.optimizer.param_groups[0]["momentum"] == 0.9
    built = build_strategy("constant-x10", "adam", param, 10, lr=0.01, betas=[0.5, 0.9])
    assert built.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    assert built.optimizer.param_groups[0]["betas"] == (0.5, 0.9)
    built = build_strategy("goals", "adam", param, 10, tolerance=0.5, betas=[0.0, 0.999])
    assert built.optimizer.defaults["tolerance"] == 0.5
    assert built.optimizer.defaults["betas"] == (0.0, 0.999)
    built = build_strategy("step-decay", "sgd", param, 100, milestones=[0.2], gamma=0.5)
    assert built.scheduler.milestones == {20: 1}


def test_allowed_overrides():
    assert "lr" not in allowed_overrides("goals", "sgd")
    assert {"tolerance", "initial_step", "betas"} <= set(allowed_overrides("goals", "adam"))
    assert "running_stats" not in allowed_overrides("goals", "sgd")
    assert {"lr", "momentum", "milestones", "restart_cycles"} <= set(
        allowed_overrides("cosine", "sgd"))


def test_validate_overrides_names_the_option():
    with pytest.raises(ValueError, match="optimizer.lr: unknown option"):
        validate_overrides("goals", "sgd", {"lr": 0.1})
    with pytest.raises(ValueError, match="optimizer.tolerance"):
        validate_overrides("goals", "sgd", {"tolerance": 2.0, "growth": 2.0})
    with pytest.raises(ValueError, match="optimizer.milestones"):
        validate_overrides("step-decay", "sgd", {"milestones": [1.5]})
    validate_overrides("cosine", "rmsprop", {"lr": 0.01, "alpha": 0.9})


def test_bad_names_and_budget():
    param = [torch.zeros(1, requires_grad=True)]
    with pytest.raises(ValueError, match="unknown strategy"):
        build_strategy("adagrad", "sgd", param, 10)
    with pytest.raises(ValueError, match="unknown direction"):
        build_strategy("goals", "lbfgs", param, 10)
    with pytest.raises(ValueError, match="budget_fe"):
        build_strategy("cosine", "sgd", param, 0)
