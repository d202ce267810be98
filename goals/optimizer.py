"""The GOALS optimizer: a search direction combined with a line search that sets the step size.

Reference: Y. Chae, D. N. Wilke, D. Kafka, "GOALS: Gradient-Only Approximations for Line Searches
Towards Robust and Consistent Training of Deep Neural Networks", arXiv:2105.10915 (2021); journal
version "Gradient-only surrogate to resolve learning rates for robust and consistent training of
deep neural networks", Applied Intelligence (2023).
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any, Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from goals.directions import DIRECTION_RULES, compute_direction_
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

LINE_SEARCHES = ("goals", "gos-ls", "gols-i", "gols-back", "armijo")

#: Options that belong to the line search; they must be equal in every parameter group because
#: one step size moves all parameters.
LINE_SEARCH_OPTIONS = (
    "direction", "line_search", "initial_step", "step_size_min", "step_size_max",
    "max_update_norm", "growth", "tolerance", "max_refinements", "max_evaluations",
    "max_extrapolation", "curvature", "sufficient_decrease", "backtrack", "reset_factor",
    "fresh_randomness",
)

#: Key of the optimizer-wide state (step size, counters, diagnostics) inside ``self.state``.
STATUS_KEY = "line_search"

#: Diagnostics of one step, in the order loggers print them.
RECORD_FIELDS = (
    "iteration", "step_size", "loss", "evaluations", "forward_evaluations", "growths",
    "refinements", "criterion_met", "hit_min", "hit_max", "nonfinite", "fallback",
    "derivative_at_zero", "max_step_size",
)


def _sum_float64(scalars: list[Tensor]) -> Tensor:
    """Sum 0-dim tensors in float64, so parameters of mixed dtypes combine without loss."""
    if all(scalar.dtype == scalars[0].dtype for scalar in scalars):
        return torch.stack(scalars).sum(dtype=torch.float64)
    return torch.stack([scalar.to(torch.float64) for scalar in scalars]).sum()


class GOALS(Optimizer):
    r"""Line-search optimizer: ``x <- x + a d`` with ``d`` from SGD, RMSprop or Adam and ``a`` from
    a gradient-only line search (or the SLS-Armijo baseline).

    .. math::
        d_k = \mathrm{direction}(g_k), \qquad
        a_k = \mathrm{search}\bigl(a \mapsto d_k \cdot \nabla L(x_k + a d_k)\bigr), \qquad
        x_{k+1} = x_k + a_k d_k

    The step size *is* the learning rate of the iteration; there is no ``lr`` argument.

    The closure follows PyTorch's contract: it zeroes the gradients, computes the loss on a
    mini-batch, calls ``backward()`` and returns the loss. The optimizer calls it under
    ``torch.enable_grad()``, once per function evaluation (FE). For the gradient-only searches it
    should draw a **fresh batch on every call** (dynamic MBSS, see :func:`goals.make_closure`).
    ``line_search="armijo"`` compares function values and needs a closure that keeps one batch
    for the whole step and accepts ``backward=False`` for forward-only evaluations.

    Gradient reuse [lineage]: the last evaluation of a step is at the accepted point, so its
    gradient starts the next step and costs no FE. The first step spends one FE at the start.
    After ``step()`` the parameters sit exactly at ``x_k + a_k d_k``, recomputed from a saved copy
    of ``x_k``.

    Args:
        params: parameters or parameter groups. Direction options (``momentum``, ``alpha``,
            ``betas``, ``eps``, ``weight_decay``) may differ between groups; line-search options
            may not.
        direction: ``"sgd"``, ``"rmsprop"`` or ``"adam"``.
        line_search: ``"goals"`` (GOS-LSC), ``"gos-ls"``, ``"gols-i"``, ``"gols-back"`` or
            ``"armijo"``.
        initial_step: step tried first on the first iteration [lineage: 1e-8 for the
            gradient-only searches; 1.0 for Armijo, as in SLS]. Later iterations start from the
            previous accepted step.
        step_size_min: lower bound on the step [lineage: 1e-8].
        step_size_max: upper bound on the step [lineage: 1e7].
        max_update_norm: the step is also bounded by ``max_update_norm / ||d||`` so one update
            never moves the parameters further than this norm [lineage: 1.0].
        growth: growth factor of the bracketing phase, and shrink factor after a non-finite
            trial [lineage: 2.0].
        tolerance: GOALS criterion ``|F'(a*)| <= tolerance |F'(0)|`` [ours: 0.9].
        max_refinements: GOALS surrogate refinements before giving up [ours: 3].
        max_evaluations: FE cap of one line search [ours: 40].
        max_extrapolation: GOS-LS caps its minimiser at this multiple of the trial [ours: 10].
        curvature: GOLS-I and GOLS-Back constant ``c2`` [lineage: 0.9].
        sufficient_decrease: Armijo constant [SLS: 0.1].
        backtrack: Armijo shrink factor [SLS: 0.9].
        reset_factor: Armijo's next search starts at ``reset_factor`` times the last step
            [ours: 2 ** 0.1, SLS's factor 2 raised to an assumed batch/data ratio of 0.1].
        momentum: SGD heavy-ball momentum (0 = none).
        alpha: RMSprop smoothing constant (torch default 0.99).
        betas: Adam ``(beta1, beta2)``. Standard Adam uses ``beta1 = 0.9`` (the default here);
            the lineage ran Adam directions with ``beta1 = 0``.
        eps: RMSprop and Adam denominator constant.
        weight_decay: L2 penalty ``weight_decay / 2 ||x||^2`` added to the objective [ours]: its
            gradient ``weight_decay * x`` enters the direction *and* every directional
            derivative, so the line search minimises the same regularised loss.
        running_stats: buffers to protect from trial evaluations, normally
            ``goals.running_stat_buffers(model)`` (BatchNorm running means, variances and
            counters). Each trial starts from the values at the start of the step, so a step adds
            exactly one update, from the accepted point [ours]; a step that evaluates its start
            point (the first step, every Armijo step) keeps that evaluation's update too, as
            plain training would. Without this argument every trial updates them.
        fresh_randomness: ``True`` (default, dynamic MBSS): dropout and other torch randomness
            differ at every evaluation. ``False``: the global torch RNG is rewound before every
            evaluation of a step, so all trials of one search see the same dropout masks.

    .. note::
        Descent check [ours]: when ``d . g >= 0`` (possible with momentum) the step uses the
        steepest-descent direction ``-g`` instead and counts a ``fallback``. A zero gradient
        takes no step.

    .. warning::
        Not supported, refused with an error: sparse gradients, float16 parameters (use bfloat16
        autocast inside the closure; its gradients are float32 and need no scaler), and running
        in several processes (``torch.distributed``; each rank would draw its own batches).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        direction: str = "sgd",
        line_search: str = "goals",
        *,
        initial_step: float | None = None,
        step_size_min: float = STEP_SIZE_MIN,
        step_size_max: float = STEP_SIZE_MAX,
        max_update_norm: float = 1.0,
        growth: float = 2.0,
        tolerance: float = 0.9,
        max_refinements: int = 3,
        max_evaluations: int = 40,
        max_extrapolation: float = 10.0,
        curvature: float = 0.9,
        sufficient_decrease: float = 0.1,
        backtrack: float = 0.9,
        reset_factor: float = 2.0**0.1,
        momentum: float = 0.0,
        alpha: float = 0.99,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        running_stats: Iterable[Tensor] | None = None,
        fresh_randomness: bool = True,
    ) -> None:
        numbers = dict(
            initial_step=initial_step, step_size_min=step_size_min, step_size_max=step_size_max,
            max_update_norm=max_update_norm, growth=growth, tolerance=tolerance,
            max_refinements=max_refinements, max_evaluations=max_evaluations,
            max_extrapolation=max_extrapolation, curvature=curvature,
            sufficient_decrease=sufficient_decrease, backtrack=backtrack,
            reset_factor=reset_factor, momentum=momentum, alpha=alpha, eps=eps,
            weight_decay=weight_decay,
        )
        for name, value in [*numbers.items(), *(("betas", beta) for beta in betas)]:
            if (name != "initial_step" or value is not None) and (
                    isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TypeError(
                    f"{name} must be a number, got {value!r} of type {type(value).__name__}"
                    + ("; YAML reads 1e-3 as a string: write 1.0e-3" if isinstance(value, str)
                       else "")
                )
        if direction not in DIRECTION_RULES:
            raise ValueError(f"direction={direction!r}; choose one of {sorted(DIRECTION_RULES)}")
        if line_search not in LINE_SEARCHES:
            raise ValueError(f"line_search={line_search!r}; choose one of {list(LINE_SEARCHES)}")
        if initial_step is None:
            initial_step = 1.0 if line_search == "armijo" else 1e-8
        if not 0 < step_size_min <= step_size_max:
            raise ValueError(f"need 0 < step_size_min <= step_size_max, got {step_size_min}, "
                             f"{step_size_max}")
        if not initial_step > 0:
            raise ValueError(f"initial_step must be positive, got {initial_step}")
        if not max_update_norm > 0:
            raise ValueError(f"max_update_norm must be positive, got {max_update_norm}")
        if not growth > 1:
            raise ValueError(f"growth must be greater than 1, got {growth}")
        if not 0 < tolerance < 1:
            raise ValueError(f"tolerance must lie in (0, 1), got {tolerance}")
        if not 0 < curvature < 1:
            raise ValueError(f"curvature must lie in (0, 1), got {curvature}")
        if max_refinements < 0:
            raise ValueError(f"max_refinements must be >= 0, got {max_refinements}")
        if max_evaluations < 2:
            raise ValueError(f"max_evaluations must be >= 2, got {max_evaluations}")
        if not max_extrapolation >= 1:
            raise ValueError(f"max_extrapolation must be >= 1, got {max_extrapolation}")
        if not 0 < sufficient_decrease < 1:
            raise ValueError(f"sufficient_decrease must lie in (0, 1), got {sufficient_decrease}")
        if not 0 < backtrack < 1:
            raise ValueError(f"backtrack must lie in (0, 1), got {backtrack}")
        if not reset_factor >= 1:
            raise ValueError(f"reset_factor must be >= 1, got {reset_factor}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if not 0 <= alpha < 1:
            raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
        if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")

        defaults = dict(
            direction=direction, line_search=line_search, initial_step=initial_step,
            step_size_min=step_size_min, step_size_max=step_size_max,
            max_update_norm=max_update_norm, growth=growth, tolerance=tolerance,
            max_refinements=max_refinements, max_evaluations=max_evaluations,
            max_extrapolation=max_extrapolation, curvature=curvature,
            sufficient_decrease=sufficient_decrease, backtrack=backtrack,
            reset_factor=reset_factor, momentum=momentum, alpha=alpha, betas=tuple(betas),
            eps=eps, weight_decay=weight_decay, fresh_randomness=fresh_randomness,
        )
        super().__init__(params, defaults)
        self.running_stats = list(running_stats) if running_stats is not None else []
        self._stat_snapshots = [buffer.clone() for buffer in self.running_stats]
        self._weight_decays: list[float] = []  # per active parameter, set at each step
        self._warned: set[str] = set()
        self._previous_batch: Any = None

    # ----------------------------------------------------------------------------------------
    # Set-up and checks

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; refuse line-search options that differ from the optimizer's."""
        for key in LINE_SEARCH_OPTIONS:
            if key in param_group and param_group[key] != self.defaults[key]:
                raise ValueError(
                    f"parameter group sets {key}={param_group[key]!r}, but line-search options "
                    f"must be the same for all groups (one step size moves every parameter); "
                    f"pass {key} to the GOALS constructor instead"
                )
        super().add_param_group(param_group)
        for param in self.param_groups[-1]["params"]:
            if param.dtype == torch.float16:
                raise ValueError(
                    "float16 parameters are not supported: keep parameters in float32 (or "
                    "bfloat16) and use torch.autocast(dtype=torch.bfloat16) inside the closure"
                )

    def _status(self) -> dict[str, Any]:
        """Optimizer-wide state: next trial step, counters and the last step's diagnostics."""
        if STATUS_KEY not in self.state:
            self.state[STATUS_KEY] = {
                "step_size": float(self.defaults["initial_step"]),
                "iteration": 0,
                "gradient_valid": False,
                "loss": math.nan,
                "evaluations": 0,
                "forward_evaluations": 0,
                "record": {},
            }
        return self.state[STATUS_KEY]

    @property
    def last_record(self) -> dict[str, Any]:
        """Diagnostics of the last step (fields in ``RECORD_FIELDS``), ready for a logger."""
        return dict(self._status()["record"])

    @property
    def total_evaluations(self) -> int:
        """Forward-and-backward evaluations (FEs) made by this optimizer so far."""
        return int(self._status()["evaluations"])

    @property
    def total_forward_evaluations(self) -> int:
        """Forward-only evaluations made by this optimizer so far (Armijo)."""
        return int(self._status()["forward_evaluations"])

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a checkpoint; the optimizer-wide status is copied, not shared with the dict."""
        super().load_state_dict(state_dict)
        if STATUS_KEY in self.state:
            self.state[STATUS_KEY] = copy.deepcopy(self.state[STATUS_KEY])

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    def _check_resampled(self, closure: Callable[..., Any]) -> None:
        """Armijo: warn once if a static closure still holds the previous step's batch."""
        batch = getattr(closure, "last_batch", None)
        if batch is not None and batch is self._previous_batch:
            self._warn_once("resample", "line_search='armijo': the closure kept the previous "
                            "step's batch; call closure.resample() before each step")
        self._previous_batch = batch

    @staticmethod
    def _refuse_distributed() -> None:
        distributed = torch.distributed
        if distributed.is_available() and distributed.is_initialized():
            if distributed.get_world_size() > 1:
                raise RuntimeError(
                    "GOALS does not support several processes (torch.distributed world size "
                    f"{distributed.get_world_size()}): each rank samples its own batches and "
                    "would take different line-search decisions. Run one process per run "
                    "(see goals.sweep for one GPU per worker)."
                )

    def _parameter_name(self, param: Tensor) -> str:
        for group_index, group in enumerate(self.param_groups):
            for index, candidate in enumerate(group["params"]):
                if candidate is param:
                    names = group.get("param_names")
                    if names:
                        return f"{names[index]!r}"
                    return f"#{index} of parameter group {group_index} (shape "\
                           f"{tuple(param.shape)})"
        return f"of shape {tuple(param.shape)}"

    # ----------------------------------------------------------------------------------------
    # Evaluations

    def _call_closure(self, closure: Callable[..., Any], status: dict[str, Any]) -> Tensor:
        """One FE: run the closure with gradients enabled and count it."""
        with torch.enable_grad():
            loss = closure()
        if loss is None:
            raise ValueError("the closure returned None: it must return the loss")
        status["evaluations"] += 1
        return torch.as_tensor(loss).detach()

    def _capture_gradient(self) -> None:
        """Store the (weight-decayed) gradient at the current point as the next start gradient.

        Parameters whose gradient is None or all zero take no part in the next step and get no
        state. One host synchronisation decides which gradients are non-zero.
        """
        candidates = [
            (param, group["weight_decay"])
            for group in self.param_groups for param in group["params"]
            if param.requires_grad and param.grad is not None
        ]
        for param, _ in candidates:
            if param.grad.is_sparse:
                raise ValueError(
                    f"parameter {self._parameter_name(param)} has a sparse gradient, which "
                    "GOALS does not support; use dense gradients (e.g. "
                    "nn.Embedding(sparse=False))"
                )
        if not candidates and all(param.grad is None for group in self.param_groups
                                  for param in group["params"]):
            raise ValueError(
                "no parameter has a gradient after the closure ran: the closure must call "
                "loss.backward() (and the parameters must be the ones the loss depends on)"
            )
        if candidates:
            # The largest |g| is zero only for an all-zero gradient (NaN and inf count as
            # non-zero); unlike the 2-norm it cannot underflow.
            largest = torch._foreach_norm([param.grad for param, _ in candidates], ord=math.inf)
            flags = torch.stack(largest).ne(0).tolist()
        else:
            flags = []
        kept: dict[float, list[tuple[Tensor, Tensor]]] = {}
        for (param, weight_decay), nonzero in zip(candidates, flags):
            state = self.state[param]
            if not nonzero and not state:
                continue
            if "gradient" not in state:
                state["gradient"] = torch.empty_like(param, memory_format=torch.preserve_format)
            state["active"] = bool(nonzero)
            kept.setdefault(weight_decay, []).append((param, state["gradient"]))
        for weight_decay, pairs in kept.items():
            params, gradients = [p for p, _ in pairs], [g for _, g in pairs]
            torch._foreach_copy_(gradients, [p.grad for p in params])
            if weight_decay:
                torch._foreach_add_(gradients, params, alpha=weight_decay)
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None and self.state.get(param):
                    self.state[param]["active"] = False

    def _evaluate_here(self, closure: Callable[..., Any], status: dict[str, Any]) -> float:
        """One FE at the current point; keep its gradient as the start gradient."""
        loss = self._call_closure(closure, status)
        self._capture_gradient()
        return float(loss)

    def _active(self) -> list[tuple[dict[str, Any], list[Tensor]]]:
        """Parameter groups with the parameters that take part in this step."""
        return [
            (group, [p for p in group["params"] if self.state.get(p, {}).get("active")])
            for group in self.param_groups
        ]

    # ----------------------------------------------------------------------------------------
    # The step

    @torch.no_grad()
    def step(self, closure: Callable[..., Any] | None = None) -> Tensor:  # type: ignore[override]
        """Take one line-search step.

        Args:
            closure: zeroes the gradients, evaluates the loss on a mini-batch, calls
                ``backward()`` and returns the loss. Required.

        Returns:
            The loss at the point where the step started (a 0-dim CPU tensor).
        """
        if closure is None:
            raise ValueError(
                "GOALS needs a closure: optimizer.step(closure), where closure() zeroes the "
                "gradients, computes the loss on a fresh mini-batch, calls backward() and "
                "returns the loss"
            )
        self._refuse_distributed()
        options = self.defaults
        search = options["line_search"]
        if search == "armijo" and getattr(closure, "mbss", "static") == "dynamic":
            raise ValueError(
                "line_search='armijo' compares function values and needs one batch per step: "
                "use goals.make_closure(..., mbss='static') and call closure.resample() before "
                "each step"
            )
        status = self._status()
        evaluations_before = status["evaluations"]
        forward_before = status["forward_evaluations"]
        record: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
        record.update(iteration=status["iteration"] + 1, fallback=False, growths=0,
                      refinements=0, nonfinite=0, hit_min=False, hit_max=False,
                      criterion_met=False)

        if search == "armijo":
            self._check_resampled(closure)

        # 1. Gradient at the current point: reused from the last step, or one FE here.
        if search == "armijo" or not status["gradient_valid"]:
            status["loss"] = self._evaluate_here(closure, status)
        start_loss = status["loss"]
        active = self._active()
        params = [p for _, group_params in active for p in group_params]
        self._weight_decays = [group["weight_decay"] for group, ps in active for _ in ps]

        # 2. Direction from the start gradient (moments updated once), and F'(0).
        step_size = 0.0
        if params:
            directions, starts = self._update_directions(active)
            derivative_at_zero, direction_norm = self._check_descent(params, directions, record)
        else:
            directions, starts, derivative_at_zero, direction_norm = [], [], 0.0, 0.0
        record["derivative_at_zero"] = derivative_at_zero

        # 3. Line search, unless there is nothing to do (zero or non-finite gradient).
        if params and derivative_at_zero < 0 and direction_norm > 0:
            max_step = min(options["step_size_max"], options["max_update_norm"] / direction_norm)
            max_step = max(max_step, options["step_size_min"])
            record["max_step_size"] = max_step
            torch._foreach_copy_(starts, params)
            self._snapshot_trial_state()
            step_size, result = self._search(
                closure, status, params, starts, directions, derivative_at_zero, start_loss,
                max_step,
            )
            for key in ("growths", "refinements", "criterion_met", "hit_min", "hit_max",
                        "nonfinite"):
                record[key] = getattr(result, key)
            status["forward_evaluations"] += result.forward_evaluations
            step_size = self._settle(closure, status, params, starts, directions, step_size,
                                     result, record)
            if step_size > 0:
                status["step_size"] = step_size
            else:
                status["step_size"] = max(status["step_size"] / options["growth"],
                                          options["step_size_min"])
        else:
            # Nothing to search along: stay, and keep the start gradient for the next step.
            status["gradient_valid"] = bool(params) and math.isfinite(derivative_at_zero)
            if params and not math.isfinite(derivative_at_zero):
                self._warn_once("nonfinite", "the loss or gradient at the current point is not "
                                "finite: no step is taken (the run has diverged or the closure "
                                "returns NaN)")

        status["iteration"] += 1
        record.update(
            step_size=step_size,
            loss=status["loss"],
            evaluations=status["evaluations"] - evaluations_before,
            forward_evaluations=status["forward_evaluations"] - forward_before,
        )
        status["record"] = record
        logger.debug("step %(iteration)d: step_size=%(step_size).3g evaluations=%(evaluations)d",
                     record)
        return torch.tensor(start_loss)

    def _update_directions(
        self, active: list[tuple[dict[str, Any], list[Tensor]]]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Update each active parameter's moments once and write its direction.

        Returns the direction buffers and the start-point buffers (which, until the search
        copies the parameters into them, hold the start gradients).
        """
        name = self.defaults["direction"]
        for group, group_params in active:
            buffer_names = list(DIRECTION_RULES[name].buffers)
            if name == "sgd" and group["momentum"] == 0:
                buffer_names = []
            # Parameters that joined later have fewer updates: bucket by update count.
            buckets: dict[int, list[Tensor]] = {}
            for param in group_params:
                state = self.state[param]
                if "direction" not in state:
                    state["direction"] = torch.empty_like(param,
                                                          memory_format=torch.preserve_format)
                    state["direction_updates"] = 0
                    for buffer_name in buffer_names:
                        state[buffer_name] = torch.zeros_like(
                            param, memory_format=torch.preserve_format)
                state["direction_updates"] += 1
                buckets.setdefault(state["direction_updates"], []).append(param)
            for updates, bucket in buckets.items():
                states = [self.state[param] for param in bucket]
                buffers = {key: [state[key] for state in states] for key in buffer_names}
                compute_direction_(name, [state["direction"] for state in states],
                                   [state["gradient"] for state in states], buffers, group,
                                   updates)
        states = [self.state[param] for _, group_params in active for param in group_params]
        return [state["direction"] for state in states], [state["gradient"] for state in states]

    def _check_descent(
        self, params: list[Tensor], directions: list[Tensor], record: dict[str, Any]
    ) -> tuple[float, float]:
        """Return ``F'(0) = d . g`` and ``||d||``, falling back to ``d = -g`` if not descent."""
        gradients = [self.state[p]["gradient"] for p in params]
        dots = [torch.vdot(d.flatten(), g.flatten()) for d, g in zip(directions, gradients)]
        sums = torch.stack([
            _sum_float64(dots),
            _sum_float64(torch._foreach_pow(torch._foreach_norm(directions), 2)),
            _sum_float64(torch._foreach_pow(torch._foreach_norm(gradients), 2)),
        ])
        derivative_at_zero, direction_sq, gradient_sq = sums.tolist()
        # Not a descent direction (or not finite): use steepest descent this iteration.
        if not (derivative_at_zero < 0 and math.isfinite(direction_sq)):
            record["fallback"] = True
            torch._foreach_copy_(directions, gradients)
            torch._foreach_neg_(directions)
            derivative_at_zero, direction_sq = -gradient_sq, gradient_sq
            logger.debug("direction is not a descent direction; using steepest descent")
        if not math.isfinite(derivative_at_zero):
            record["nonfinite"] = 1
            return math.nan, 0.0
        return derivative_at_zero, math.sqrt(direction_sq)

    def _move(self, params: list[Tensor], starts: list[Tensor], directions: list[Tensor],
              step_size: float) -> None:
        """Set the parameters to exactly ``start + step_size * direction``."""
        torch._foreach_copy_(params, starts)
        if step_size != 0.0:
            torch._foreach_add_(params, directions, alpha=step_size)

    def _snapshot_trial_state(self) -> None:
        """Remember running statistics and RNG state so every trial starts from them."""
        if self.running_stats:
            torch._foreach_copy_(self._stat_snapshots, self.running_stats)
        if not self.defaults["fresh_randomness"]:
            self._rng_state = torch.random.get_rng_state()
            self._cuda_rng_state = (torch.cuda.get_rng_state_all()
                                    if torch.cuda.is_available() and torch.cuda.is_initialized()
                                    else None)

    def _restore_trial_state(self) -> None:
        if self.running_stats:
            torch._foreach_copy_(self.running_stats, self._stat_snapshots)
        if not self.defaults["fresh_randomness"]:
            torch.random.set_rng_state(self._rng_state)
            if self._cuda_rng_state is not None:
                torch.cuda.set_rng_state_all(self._cuda_rng_state)

    def _trial(self, closure: Callable[..., Any], status: dict[str, Any], params: list[Tensor],
               starts: list[Tensor], directions: list[Tensor], step_size: float) -> float:
        """One FE at ``start + step_size * direction``; returns ``F'(step_size)`` (nan if the loss
        or derivative is not finite). One host synchronisation."""
        self._move(params, starts, directions, step_size)
        self._restore_trial_state()
        loss = self._call_closure(closure, status)
        terms = [torch.vdot(direction.flatten(), param.grad.flatten())
                 for param, direction in zip(params, directions) if param.grad is not None]
        for param, direction, weight_decay in zip(params, directions, self._weight_decays):
            if weight_decay:
                terms.append(weight_decay * torch.vdot(direction.flatten(), param.flatten()))
        derivative = _sum_float64(terms) if terms else torch.zeros((), dtype=torch.float64,
                                                                      device=loss.device)
        loss_value, derivative = torch.stack(
            [loss.to(derivative.device, torch.float64).reshape(()), derivative]).tolist()
        status["trial_loss"] = loss_value
        if not (math.isfinite(loss_value) and math.isfinite(derivative)):
            return math.nan
        return derivative

    def _search(
        self, closure: Callable[..., Any], status: dict[str, Any], params: list[Tensor],
        starts: list[Tensor], directions: list[Tensor], derivative_at_zero: float,
        start_loss: float, max_step: float,
    ) -> tuple[float, SearchResult]:
        """Run the configured pure line search over this step's line."""
        options = self.defaults
        bounds = dict(step_size_min=options["step_size_min"], step_size_max=max_step)

        def derivative(step_size: float) -> float:
            return self._trial(closure, status, params, starts, directions, step_size)

        search = options["line_search"]
        initial = status["step_size"]
        if search == "goals":
            return goals_search(derivative, derivative_at_zero, initial, **bounds,
                                growth=options["growth"], tolerance=options["tolerance"],
                                max_refinements=options["max_refinements"],
                                max_evaluations=options["max_evaluations"])
        if search == "gos-ls":
            return gos_ls_search(derivative, derivative_at_zero, initial, **bounds,
                                 growth=options["growth"],
                                 max_extrapolation=options["max_extrapolation"],
                                 max_evaluations=options["max_evaluations"])
        if search == "gols-i":
            return gols_i_search(derivative, derivative_at_zero, initial, **bounds,
                                 curvature=options["curvature"],
                                 max_evaluations=options["max_evaluations"])
        if search == "gols-back":
            return gols_back_search(derivative, derivative_at_zero, **bounds,
                                    curvature=options["curvature"],
                                    max_evaluations=options["max_evaluations"])

        # Armijo: forward-only losses on the step's fixed batch.
        def loss(step_size: float) -> float:
            self._move(params, starts, directions, step_size)
            self._restore_trial_state()
            with torch.no_grad():
                value = closure(backward=False)
            return float(value)

        return armijo_search(loss, start_loss, derivative_at_zero,
                             initial * options["reset_factor"], **bounds,
                             sufficient_decrease=options["sufficient_decrease"],
                             backtrack=options["backtrack"])

    def _settle(
        self, closure: Callable[..., Any], status: dict[str, Any], params: list[Tensor],
        starts: list[Tensor], directions: list[Tensor], step_size: float,
        result: SearchResult, record: dict[str, Any],
    ) -> float:
        """Put the parameters at the accepted point and make its gradient the next start one.

        If the accepted point was the last one evaluated, its gradient is already in place.
        Otherwise one FE is spent there; a non-finite result there shrinks the step by
        ``growth`` (counted), down to staying at the start point.
        """
        options = self.defaults
        if options["line_search"] == "armijo":
            # Armijo evaluates each step's start on its own batch: no gradient to carry over.
            self._move(params, starts, directions, step_size)
            if self.running_stats:
                torch._foreach_copy_(self.running_stats, self._stat_snapshots)
            status["gradient_valid"] = False
            return step_size

        evaluated = (step_size > 0 and result.last_step == step_size
                     and result.last_derivative is not None
                     and math.isfinite(result.last_derivative))
        while not evaluated:
            value = self._trial(closure, status, params, starts, directions, step_size)
            if math.isfinite(value) or step_size == 0.0:
                break
            # Non-finite at the accepted point: shrink towards the start point.
            record["nonfinite"] += 1
            step_size /= options["growth"]
            if step_size < options["step_size_min"]:
                step_size = 0.0
        status["loss"] = status.get("trial_loss", math.nan)
        if math.isfinite(status["loss"]):
            self._capture_gradient()
            status["gradient_valid"] = True
        else:
            status["gradient_valid"] = False
        return step_size
