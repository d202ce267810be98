"""Gradient-only line searches and the SLS-Armijo baseline, as pure functions.

Every search here looks along one line ``x + a d`` and touches the model only through a callable:

- ``derivative(a) -> float`` returns the directional derivative ``F'(a) = d . grad L(x + a d)``
  sampled on a mini-batch; each call is one function evaluation (FE: forward and backward).
- ``loss(a) -> float`` (SLS-Armijo only) returns ``F(a)`` on the iteration's fixed batch; each call
  is one forward-only evaluation.

A callable may return a non-finite number (the loss overflowed at that trial point). Each search
rejects such a trial, shrinks the step by its growth factor and counts the event.

The searches return the accepted step size and a :class:`SearchResult` that says what happened.
``SearchResult.last_step`` is the step of the last derivative evaluation: when it equals the
accepted step, the gradient left behind by that evaluation is the gradient at the new point and
starts the next iteration (gradient reuse). Otherwise the caller spends one FE at the accepted
point.

Methods (see the README for the full references):

- GOALS / GOS-LSC and GOS-LS: Y. Chae, D. N. Wilke, D. Kafka, "GOALS: Gradient-Only Approximations
  for Line Searches Towards Robust and Consistent Training of Deep Neural Networks",
  arXiv:2105.10915 (2021); journal version in Applied Intelligence (2023).
- GOLS-I and GOLS-Back: D. Kafka, D. N. Wilke, "Gradient-only line searches: an alternative to
  probabilistic line searches", arXiv:1903.09383.
- SLS-Armijo: S. Vaswani et al., "Painless stochastic gradient: interpolation, line-search, and
  convergence rates", NeurIPS 2019.

Rules marked **[ours]** in the docstrings are this project's reading where the published record is
silent; each one is a keyword argument so it can be switched.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

Derivative = Callable[[float], float]
Loss = Callable[[float], float]

#: Smallest step size a search may return [lineage].
STEP_SIZE_MIN = 1e-8
#: Largest step size a search may return, before the update-norm bound [lineage].
STEP_SIZE_MAX = 1e7


@dataclass
class SearchResult:
    """What one line search did.

    Attributes:
        step_size: the accepted step size (0.0 when no finite trial point was found).
        evaluations: derivative evaluations (FEs, forward and backward).
        forward_evaluations: forward-only loss evaluations (SLS-Armijo).
        growths: times the step was enlarged.
        refinements: surrogate or halving steps after the first trial.
        criterion_met: whether the method's acceptance condition held at the accepted step.
        hit_min: the step was clipped at, or shrank below, the lower bound.
        hit_max: the step was clipped at the upper bound.
        nonfinite: trial points whose loss or derivative was not finite.
        last_step: the step of the last derivative evaluation (None if there was none).
        last_derivative: the derivative measured there.
    """

    step_size: float = 0.0
    evaluations: int = 0
    forward_evaluations: int = 0
    growths: int = 0
    refinements: int = 0
    criterion_met: bool = False
    hit_min: bool = False
    hit_max: bool = False
    nonfinite: int = 0
    last_step: float | None = None
    last_derivative: float | None = None

    def to_dict(self) -> dict:
        """Plain-dict view for logging and checkpoints."""
        return asdict(self)


def clip_step(step_size: float, step_size_min: float, step_size_max: float,
              result: SearchResult) -> float:
    """Clip a step size to ``[step_size_min, step_size_max]`` and record a bound hit."""
    if step_size > step_size_max:
        result.hit_max = True
        return step_size_max
    if step_size < step_size_min:
        result.hit_min = True
        return step_size_min
    return step_size


def _measure(derivative: Derivative, step_size: float, result: SearchResult) -> float:
    """Evaluate ``F'(step_size)`` once, counting the FE and a non-finite outcome."""
    value = float(derivative(step_size))
    result.evaluations += 1
    result.last_step = step_size
    result.last_derivative = value
    if not math.isfinite(value):
        result.nonfinite += 1
    return value


def _check_bounds(derivative_at_zero: float, step_size_min: float, step_size_max: float) -> None:
    if not derivative_at_zero < 0:
        raise ValueError(
            f"F'(0) = {derivative_at_zero} is not negative: a line search needs a descent "
            "direction (the optimizer falls back to steepest descent before calling it)"
        )
    if not 0 < step_size_min <= step_size_max:
        raise ValueError(
            f"need 0 < step_size_min <= step_size_max, got {step_size_min}, {step_size_max}"
        )


def _surrogate_minimiser(lower: tuple[float, float], upper: tuple[float, float]) -> float:
    """Zero of the line through two (step, derivative) points of opposite sign.

    The derivative of the gradient-only quadratic is linear, so its minimiser is where that line
    crosses zero. With ``F'(lower) < 0 <= F'(upper)`` the result lies inside ``[lower, upper]``.
    """
    (step_lower, derivative_lower), (step_upper, derivative_upper) = lower, upper
    step = step_lower - derivative_lower * (step_upper - step_lower) / (
        derivative_upper - derivative_lower
    )
    return min(max(step, step_lower), step_upper)


def goals_search(
    derivative: Derivative,
    derivative_at_zero: float,
    initial_step: float,
    *,
    step_size_min: float = STEP_SIZE_MIN,
    step_size_max: float = STEP_SIZE_MAX,
    growth: float = 2.0,
    tolerance: float = 0.9,
    max_refinements: int = 3,
    max_evaluations: int = 40,
) -> tuple[float, SearchResult]:
    """GOALS (GOS-LSC): gradient-only quadratic approximation inside a verified bracket.

    1. Bracket: from ``a = clip(initial_step)`` evaluate ``F'(a)``; while it is negative grow
       ``a <- growth * a``. A sign change from - to + along the line (an SNN-GPP) marks a minimum
       of the trend, so ``[a_L, a_U]`` with ``F'(a_L) < 0 <= F'(a_U)`` brackets one.
    2. Surrogate: the quadratic built from derivatives only has the linear derivative through the
       two bracket points; its minimiser ``a*`` always lies inside the bracket (no extrapolation).
    3. Optimality criterion: evaluate ``F'(a*)`` and accept if ``|F'(a*)| <= tolerance |F'(0)|``;
       otherwise ``a*`` replaces the bracket end of its sign and step 2 repeats.

    The paper states the gradient-only quadratic, dynamic MBSS and an optimality criterion; the
    bracket-then-verify reading and the constants below are ours.

    Args:
        derivative: ``a -> F'(a)``, one FE per call.
        derivative_at_zero: ``F'(0)`` from the reused gradient; must be negative.
        initial_step: first trial, normally the previous accepted step.
        step_size_min: lower bound on the step [lineage: 1e-8].
        step_size_max: upper bound on the step (the optimizer passes the update-norm bound).
        growth: factor of each growth, and of each shrink after a non-finite trial [lineage: 2].
        tolerance: ``c`` of the criterion ``|F'(a*)| <= c |F'(0)|`` [ours; the lineage used 0.9
            as its curvature tolerance].
        max_refinements: surrogate steps after the first before giving up [ours: 3]. On
            exhaustion the evaluated bracket point with the smallest ``|F'|`` is accepted [ours].
        max_evaluations: FE cap of one search [ours: 40]. If growth hits it, or the upper bound,
            the last point with a negative derivative is accepted (the conservative side) [ours].

    Returns:
        ``(step_size, result)``.
    """
    _check_bounds(derivative_at_zero, step_size_min, step_size_max)
    result = SearchResult()
    lower = (0.0, derivative_at_zero)
    step = clip_step(initial_step, step_size_min, step_size_max, result)

    # Bracketing phase: grow while the trial is still on the descent side.
    while True:
        value = _measure(derivative, step, result)
        if not math.isfinite(value):
            # Non-finite trial: it lies beyond the last good point; shrink towards it.
            step = step / growth
            if step <= lower[0] or step < step_size_min or result.evaluations >= max_evaluations:
                result.hit_min = result.hit_min or step < step_size_min
                return _accept(lower[0], result, criterion_met=False)
            continue
        if value >= 0:
            upper = (step, value)
            break
        lower = (step, value)
        # F'(a) < 0: accept the descent-side point when no further growth is allowed.
        if step >= step_size_max or result.evaluations >= max_evaluations:
            result.hit_max = result.hit_max or step >= step_size_max
            return _accept(step, result, criterion_met=False)
        step = min(step * growth, step_size_max)
        result.hit_max = result.hit_max or step >= step_size_max
        result.growths += 1

    # Surrogate phase inside [lower, upper], verified against the optimality criterion.
    candidates = [upper] if lower[0] == 0.0 else [lower, upper]
    for attempt in range(max_refinements + 1):
        if result.evaluations >= max_evaluations:
            break
        step = _surrogate_minimiser(lower, upper)
        result.refinements += attempt > 0
        value = _measure(derivative, step, result)
        if not math.isfinite(value):
            # A non-finite point inside the bracket acts as a new upper end without a slope.
            upper = (step, upper[1])
            continue
        candidates.append((step, value))
        # |F'(a*)| small relative to |F'(0)|: the optimality criterion holds.
        if abs(value) <= tolerance * abs(derivative_at_zero):
            return _accept(step, result, criterion_met=True)
        if value < 0:
            lower = (step, value)
        else:
            upper = (step, value)

    best_step, _ = min(candidates, key=lambda point: abs(point[1]))
    return _accept(best_step, result, criterion_met=False)


def gos_ls_search(
    derivative: Derivative,
    derivative_at_zero: float,
    initial_step: float,
    *,
    step_size_min: float = STEP_SIZE_MIN,
    step_size_max: float = STEP_SIZE_MAX,
    growth: float = 2.0,
    max_extrapolation: float = 10.0,
    max_evaluations: int = 40,
) -> tuple[float, SearchResult]:
    """GOS-LS: one trial and the gradient-only quadratic through ``F'(0)`` and ``F'(a1)``.

    The derivative of the quadratic is the line through ``(0, F'(0))`` and ``(a1, F'(a1))``. When
    its slope is positive (``F'(a1) > F'(0)``) the minimiser ``a* = a1 F'(0) / (F'(0) - F'(a1))`` is
    taken, even beyond ``a1``; otherwise the step grows to ``growth * a1``. There is no
    verification, so the accepted point was not evaluated: the caller spends one FE there, which
    gives about 2 FEs per iteration.

    Args:
        derivative: ``a -> F'(a)``, one FE per call.
        derivative_at_zero: ``F'(0)``; must be negative.
        initial_step: the trial ``a1``, normally the previous accepted step.
        step_size_min: lower bound on the step.
        step_size_max: upper bound on the step.
        growth: step factor when the model has no positive curvature [lineage: 2].
        max_extrapolation: ``a*`` is capped at ``max_extrapolation * a1`` [ours: 10].
        max_evaluations: FE cap for the shrinks after non-finite trials.

    Returns:
        ``(step_size, result)``; ``result.criterion_met`` says the model had positive curvature.
    """
    _check_bounds(derivative_at_zero, step_size_min, step_size_max)
    result = SearchResult()
    trial = clip_step(initial_step, step_size_min, step_size_max, result)
    value = _measure(derivative, trial, result)

    # Non-finite trial: shrink until a finite one, or give up and stay at a = 0.
    while not math.isfinite(value):
        trial /= growth
        if trial < step_size_min or result.evaluations >= max_evaluations:
            result.hit_min = True
            return _accept(0.0, result, criterion_met=False)
        value = _measure(derivative, trial, result)

    # Positive curvature of the derivative-only model: jump to its minimiser.
    if value > derivative_at_zero:
        step = trial * derivative_at_zero / (derivative_at_zero - value)
        step = min(step, max_extrapolation * trial)
        result.criterion_met = True
    else:
        step = growth * trial
        result.growths += 1
    step = clip_step(step, step_size_min, step_size_max, result)
    result.step_size = step
    return step, result


def gols_i_search(
    derivative: Derivative,
    derivative_at_zero: float,
    initial_step: float,
    *,
    step_size_min: float = STEP_SIZE_MIN,
    step_size_max: float = STEP_SIZE_MAX,
    curvature: float = 0.9,
    max_evaluations: int = 60,
) -> tuple[float, SearchResult]:
    """GOLS-I (inexact): accept at once inside the curvature band, else double or halve.

    1. ``a = clip(initial_step)``; accept if ``0 < F'(a) < curvature |F'(0)|``.
    2. If ``F'(a) < 0`` double ``a`` until ``F'(a) >= 0`` or ``a > step_size_max / 2``; if
       ``F'(a) >= 0`` halve until ``F'(a) < 0`` or ``a < 2 step_size_min``.
    3. Accept the last evaluated point, whose gradient starts the next iteration.

    A non-finite trial counts as "too far": it makes the search halve [ours].

    Args:
        derivative: ``a -> F'(a)``, one FE per call.
        derivative_at_zero: ``F'(0)``; must be negative.
        initial_step: first trial, normally the previous accepted step.
        step_size_min: lower bound on the step.
        step_size_max: upper bound on the step.
        curvature: ``c2`` of the acceptance band [lineage: 0.9].
        max_evaluations: FE cap of one search [ours: 60].

    Returns:
        ``(step_size, result)``.
    """
    _check_bounds(derivative_at_zero, step_size_min, step_size_max)
    result = SearchResult()
    step = clip_step(initial_step, step_size_min, step_size_max, result)
    value = _measure(derivative, step, result)

    # Immediate acceptance: positive but small derivative.
    if 0 < value < curvature * abs(derivative_at_zero):
        return _accept(step, result, criterion_met=True)

    if value < 0:
        # Descent side: double until the sign changes or the upper bound is near.
        while value < 0 and step <= step_size_max / 2 and result.evaluations < max_evaluations:
            step *= 2
            result.growths += 1
            value = _measure(derivative, step, result)
        if not math.isfinite(value):
            # Doubling ran into a non-finite point: step back to the last good one.
            step /= 2
            return _accept(step, result, criterion_met=False)
        result.hit_max = value < 0 and step > step_size_max / 2
    else:
        # Ascent side or non-finite: halve until the derivative is negative again.
        while (not value < 0) and step >= 2 * step_size_min:
            if result.evaluations >= max_evaluations:
                break
            step /= 2
            result.refinements += 1
            value = _measure(derivative, step, result)
        if not math.isfinite(value):
            result.hit_min = True
            return _accept(0.0, result, criterion_met=False)
        result.hit_min = not value < 0 and step < 2 * step_size_min

    criterion_met = math.isfinite(value) and abs(value) < curvature * abs(derivative_at_zero)
    return _accept(step, result, criterion_met=criterion_met)


def gols_back_search(
    derivative: Derivative,
    derivative_at_zero: float,
    *,
    step_size_min: float = STEP_SIZE_MIN,
    step_size_max: float = STEP_SIZE_MAX,
    curvature: float = 0.9,
    max_evaluations: int = 60,
) -> tuple[float, SearchResult]:
    """GOLS-Back: backtracking from the largest allowed step.

    Start at ``a = step_size_max``; accept if ``F'(a) < 0``; otherwise halve until
    ``F'(a) <= curvature |F'(0)|`` or ``a < 2 step_size_min``. A non-finite trial is halved like
    one that is too far [ours].

    Args:
        derivative: ``a -> F'(a)``, one FE per call.
        derivative_at_zero: ``F'(0)``; must be negative.
        step_size_min: lower bound on the step.
        step_size_max: the starting (and largest) step.
        curvature: ``c2`` of the acceptance condition [lineage: 0.9].
        max_evaluations: FE cap of one search [ours: 60].

    Returns:
        ``(step_size, result)``.
    """
    _check_bounds(derivative_at_zero, step_size_min, step_size_max)
    result = SearchResult(hit_max=True)
    step = step_size_max
    value = _measure(derivative, step, result)

    # The full step already descends: accept it.
    if value < 0:
        return _accept(step, result, criterion_met=True)

    # Halve until the derivative falls below the curvature threshold.
    threshold = curvature * abs(derivative_at_zero)
    while not value <= threshold and step >= 2 * step_size_min:
        if result.evaluations >= max_evaluations:
            break
        step /= 2
        result.refinements += 1
        value = _measure(derivative, step, result)

    if not math.isfinite(value):
        result.hit_min = True
        return _accept(0.0, result, criterion_met=False)
    result.hit_min = step < 2 * step_size_min
    return _accept(step, result, criterion_met=value <= threshold)


def armijo_search(
    loss: Loss,
    loss_at_zero: float,
    derivative_at_zero: float,
    initial_step: float,
    *,
    step_size_min: float = STEP_SIZE_MIN,
    step_size_max: float = STEP_SIZE_MAX,
    sufficient_decrease: float = 0.1,
    backtrack: float = 0.9,
    max_forward_evaluations: int = 100,
) -> tuple[float, SearchResult]:
    """SLS-Armijo: stochastic Armijo backtracking on the iteration's fixed batch.

    Accept the first ``a`` (from ``clip(initial_step)``, shrinking by ``backtrack``) with
    ``F(a) <= F(0) + sufficient_decrease * a * F'(0)``. Function values are compared, so every
    ``F`` must come from the same mini-batch (static MBSS within the iteration). The caller
    applies the step reset between iterations (``initial_step = previous * reset``).

    Args:
        loss: ``a -> F(a)`` on the fixed batch, one forward-only evaluation per call.
        loss_at_zero: ``F(0)`` on the same batch.
        derivative_at_zero: ``F'(0)`` on the same batch; must be negative.
        initial_step: first trial.
        step_size_min: lower bound; reaching it accepts the bound.
        step_size_max: upper bound.
        sufficient_decrease: Armijo constant ``c`` [SLS paper: 0.1].
        backtrack: shrink factor ``beta`` [SLS paper: 0.9].
        max_forward_evaluations: cap on forward-only evaluations [ours: 100].

    Returns:
        ``(step_size, result)``; ``result.last_step`` is None: no gradient is left at the point.
    """
    _check_bounds(derivative_at_zero, step_size_min, step_size_max)
    result = SearchResult()
    step = clip_step(initial_step, step_size_min, step_size_max, result)
    while result.forward_evaluations < max_forward_evaluations:
        value = float(loss(step))
        result.forward_evaluations += 1
        result.nonfinite += not math.isfinite(value)
        # Sufficient decrease on the fixed batch: accept.
        if value <= loss_at_zero + sufficient_decrease * step * derivative_at_zero:
            return _accept(step, result, criterion_met=True)
        if step * backtrack < step_size_min:
            result.hit_min = True
            return _accept(step_size_min, result, criterion_met=False)
        step *= backtrack
        result.refinements += 1
    return _accept(step, result, criterion_met=False)


def _accept(step_size: float, result: SearchResult, *,
            criterion_met: bool) -> tuple[float, SearchResult]:
    result.step_size = step_size
    result.criterion_met = criterion_met
    return step_size, result
