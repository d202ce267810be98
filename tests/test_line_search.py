"""The pure line searches on analytic functions whose answer is known."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from goals.line_search import (
    armijo_search,
    goals_search,
    gols_back_search,
    gols_i_search,
    gos_ls_search,
)


def quadratic_derivative(curvature: float, minimiser: float):
    """F(a) = curvature / 2 (a - minimiser)^2, so F'(a) = curvature (a - minimiser)."""
    return lambda step: curvature * (step - minimiser)


@pytest.mark.parametrize("initial", [0.01, 0.3, 0.9, 5.0])
def test_goals_lands_on_the_quadratic_minimiser(initial):
    derivative = quadratic_derivative(3.0, 0.7)
    step, result = goals_search(derivative, derivative(0.0), initial)
    assert step == pytest.approx(0.7, abs=1e-12)
    assert result.criterion_met
    # One bracket, one surrogate: no refinement needed on an exact quadratic.
    assert result.refinements == 0
    assert result.last_step == step
    assert result.evaluations == result.growths + 2


def test_goals_counts_growths_from_a_tiny_initial_step():
    derivative = quadratic_derivative(1.0, 0.5)
    step, result = goals_search(derivative, derivative(0.0), 1e-8)
    assert step == pytest.approx(0.5, abs=1e-12)
    # 1e-8 * 2**k >= 0.5 needs k = 26 growths.
    assert result.growths == math.ceil(math.log2(0.5 / 1e-8))


@pytest.mark.parametrize("initial", [0.3, 1.1, 2.0])
def test_gos_ls_lands_on_the_quadratic_minimiser(initial):
    derivative = quadratic_derivative(2.0, 0.7)
    step, result = gos_ls_search(derivative, derivative(0.0), initial)
    assert step == pytest.approx(0.7, abs=1e-12)
    assert result.evaluations == 1
    # The accepted point was not evaluated: the caller must spend one FE there.
    assert result.last_step != step


def test_gos_ls_caps_extrapolation_and_grows_without_curvature():
    derivative = quadratic_derivative(1.0, 100.0)
    step, _ = gos_ls_search(derivative, derivative(0.0), 1.0, max_extrapolation=10.0)
    assert step == pytest.approx(10.0)
    concave = lambda a: -1.0 - a  # noqa: E731  (F' decreasing: no positive curvature)
    step, result = gos_ls_search(concave, concave(0.0), 1.0, growth=2.0)
    assert step == 2.0 and result.growths == 1 and not result.criterion_met


def test_gols_i_accepts_inside_band_and_brackets_otherwise():
    derivative = quadratic_derivative(1.0, 1.0)
    # F'(0.95) = -0.05 < 0: doubles to 1.9 where F' = 0.9 >= 0 and stops there.
    step, result = gols_i_search(derivative, derivative(0.0), 0.95)
    assert step == pytest.approx(1.9) and result.growths == 1
    # F'(1.5) = 0.5 lies in (0, 0.9 |F'(0)|): immediate acceptance.
    step, result = gols_i_search(derivative, derivative(0.0), 1.5)
    assert step == 1.5 and result.evaluations == 1 and result.criterion_met
    # F'(8) = 7 is too large: halves to 4 (3), 2 (1 >= 0.9 still), 1 (0 <- not < 0), 0.5 (< 0).
    step, result = gols_i_search(derivative, derivative(0.0), 8.0)
    assert step == 0.5 and result.refinements == 4


def test_gols_back_starts_at_the_upper_bound():
    derivative = quadratic_derivative(1.0, 1.0)
    step, result = gols_back_search(derivative, derivative(0.0), step_size_max=16.0)
    # 16 -> 8 -> 4 -> 2 (F' = 1 > 0.9) -> 1 (F' = 0 <= 0.9): accepted.
    assert step == 1.0 and result.refinements == 4 and result.criterion_met
    step, result = gols_back_search(derivative, derivative(0.0), step_size_max=0.5)
    assert step == 0.5 and result.evaluations == 1


def test_armijo_backtracks_to_sufficient_decrease():
    loss = lambda a: (a - 1.0) ** 2  # noqa: E731
    step, result = armijo_search(loss, loss(0.0), -2.0, 4.0, sufficient_decrease=0.1,
                                 backtrack=0.5)
    # 4 -> 2 -> 1: F(2) = 1 > 1 - 0.4; F(1) = 0 <= 1 - 0.2.
    assert step == 1.0
    assert result.forward_evaluations == 3 and result.evaluations == 0
    assert result.last_step is None


def test_noisy_quadratic_accepted_steps_concentrate_at_the_minimiser():
    """F'(a) = (a - 1) + noise, noise ~ N(0, 0.1^2) drawn anew for every evaluation.

    Tolerance: with noise of standard deviation 0.1 on a unit-curvature derivative, one surrogate
    step errs by about 0.1 in the worst bracket, so over 400 searches the median accepted step
    must lie within 0.05 of the minimiser and half of the steps within 0.15 of it.
    """
    rng = random.Random(0)
    derivative = lambda a: (a - 1.0) + rng.gauss(0.0, 0.1)  # noqa: E731
    for search in (goals_search, gos_ls_search):
        steps = [search(derivative, -1.0, 0.5)[0] for _ in range(400)]
        assert abs(statistics.median(steps) - 1.0) < 0.05, search.__name__
        spread = sorted(abs(step - 1.0) for step in steps)[len(steps) // 2]
        assert spread < 0.15, search.__name__


def test_gradient_only_search_ignores_jumps_that_trap_function_values():
    """F(a) = (a - 2)^2 + 5 [a > 0.5]: the trend's minimum is at 2, a jump sits at 0.5.

    Function values say the best point is just before the jump; the derivative, which is the
    trend's everywhere except at the jump, points at 2.
    """
    def loss(a: float) -> float:
        return (a - 2.0) ** 2 + (5.0 if a > 0.5 else 0.0)

    def derivative(a: float) -> float:
        return 2.0 * (a - 2.0)

    step, result = goals_search(derivative, derivative(0.0), 0.1)
    assert step == pytest.approx(2.0, abs=1e-9) and result.criterion_met

    value_step, _ = armijo_search(loss, loss(0.0), derivative(0.0), 4.0)
    assert value_step <= 0.5
    grid = [i / 1000 for i in range(4001)]
    assert min(grid, key=loss) == 0.5


def test_nonfinite_trials_are_rejected_and_counted():
    # Finite only below a = 1.5; the trend's minimum lies at 3, out of reach.
    def derivative(a: float) -> float:
        return math.nan if a >= 1.5 else a - 3.0

    step, result = goals_search(derivative, -3.0, 1.0)
    # 1.0 (descent) -> grows to 2.0 (nan) -> shrinks to 1.0, already evaluated: accept 1.0.
    assert step == 1.0 and result.nonfinite == 1 and not result.criterion_met
    step, result = goals_search(derivative, -3.0, 4.0)
    # 4 (nan) -> 2 (nan) -> 1 (descent) -> 2 (nan) -> back to 1.
    assert step == 1.0 and result.nonfinite == 3

    step, result = gos_ls_search(derivative, -3.0, 4.0)
    assert result.nonfinite == 2 and math.isfinite(step) and step < 4.0
    nowhere = lambda a: math.inf  # noqa: E731
    step, result = goals_search(nowhere, -1.0, 1.0)
    assert step == 0.0 and result.hit_min


def test_bounds_are_respected_and_hits_recorded():
    derivative = quadratic_derivative(1.0, 50.0)
    step, result = goals_search(derivative, derivative(0.0), 1.0, step_size_max=4.0)
    # F' < 0 everywhere below 4: the conservative choice is the bound itself.
    assert step == 4.0 and result.hit_max and not result.criterion_met
    step, result = goals_search(derivative, derivative(0.0), 1e-12, step_size_min=1e-6,
                                step_size_max=4.0)
    assert result.hit_min and result.hit_max
    with pytest.raises(ValueError, match="descent direction"):
        goals_search(derivative, 0.5, 1.0)


def test_refinement_happens_when_surrogate_misses():
    # A cubic-like derivative: the linear surrogate misses, refinements tighten the bracket.
    derivative = lambda a: a**3 - 1.0  # noqa: E731   (root at 1)
    step, result = goals_search(derivative, -1.0, 2.0, tolerance=0.05, max_refinements=20,
                                max_evaluations=60)
    assert abs(derivative(step)) <= 0.05
    assert result.refinements >= 1 and result.criterion_met
    step, result = goals_search(derivative, -1.0, 2.0, tolerance=1e-9, max_refinements=1)
    assert not result.criterion_met and result.refinements == 1
