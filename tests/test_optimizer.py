"""The GOALS optimizer: PyTorch contract, and each applicable item of FAILURE-MODES.md (1-13)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import goals
from goals.optimizer import LINE_SEARCHES, RECORD_FIELDS

torch.set_num_threads(1)

GRADIENT_ONLY = ("goals", "gos-ls", "gols-i", "gols-back")


def regression_problem(seed: int = 0, n: int = 256):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 6, generator=generator)
    targets = inputs @ torch.randn(6, 1, generator=generator) + 0.1 * torch.randn(
        n, 1, generator=generator)
    return inputs, targets


def small_model(seed: int = 0, batchnorm: bool = False, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(6, 16)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1)]
    return nn.Sequential(*layers)


def setup(line_search: str = "goals", direction: str = "sgd", seed: int = 0, **kwargs):
    model = small_model(seed, batchnorm=kwargs.pop("batchnorm", False),
                        dropout=kwargs.pop("dropout", 0.0))
    inputs, targets = regression_problem(seed)
    sampler = goals.BatchSampler(inputs, targets, 32, seed=seed)
    mbss = "static" if line_search == "armijo" else "dynamic"
    closure = goals.make_closure(model, nn.functional.mse_loss, sampler, mbss=mbss)
    optimizer = goals.GOALS(model.parameters(), direction=direction, line_search=line_search,
                            **kwargs)
    return model, closure, optimizer


def run_steps(optimizer, closure, steps: int) -> list[dict]:
    records = []
    for _ in range(steps):
        if optimizer.defaults["line_search"] == "armijo":
            closure.resample()
        optimizer.step(closure)
        records.append(optimizer.last_record)
    return records


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("direction", ["sgd", "rmsprop", "adam"])
@pytest.mark.parametrize("line_search", LINE_SEARCHES)
def test_every_combination_reduces_the_loss(line_search, direction):
    model, closure, optimizer = setup(line_search, direction)
    inputs, targets = regression_problem(0)
    with torch.no_grad():
        before = nn.functional.mse_loss(model(inputs), targets).item()
    records = run_steps(optimizer, closure, 60)
    with torch.no_grad():
        after = nn.functional.mse_loss(model(inputs), targets).item()
    assert after < 0.5 * before
    assert all(set(RECORD_FIELDS) == set(record) for record in records)
    # FEs are counted the same way by the closure and the optimizer (item 13).
    assert optimizer.total_evaluations == closure.evaluations
    assert optimizer.total_forward_evaluations == closure.forward_evaluations
    assert sum(r["evaluations"] for r in records) == closure.evaluations


def test_rosenbrock_descent():
    """Deterministic Rosenbrock from (-1.5, 2), where F = 12.5.

    Steepest descent crawls along the curved valley, so 1000 steps must cut F by 50x; the Adam
    direction with GOALS, GOS-LS and GOLS-I must reach the minimum (1, 1) to F < 1e-6.
    """
    def rosenbrock(xy):
        return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2

    for line_search in GRADIENT_ONLY:
        for direction in ("sgd", "adam"):
            point = nn.Parameter(torch.tensor([-1.5, 2.0], dtype=torch.float64))
            optimizer = goals.GOALS([point], direction=direction, line_search=line_search)

            def closure():
                optimizer.zero_grad()
                loss = rosenbrock(point)
                loss.backward()
                return loss

            start = rosenbrock(point).item()
            for _ in range(1000):
                optimizer.step(closure)
            end = rosenbrock(point).item()
            assert end < start / 50, (line_search, direction, end)
            if direction == "adam" and line_search != "gols-back":
                assert end < 1e-6, (line_search, end)


def test_constructor_rejects_each_invalid_argument():
    params = [nn.Parameter(torch.zeros(2))]
    invalid = {
        "direction": "newton", "line_search": "wolfe", "initial_step": 0.0,
        "step_size_min": -1.0, "max_update_norm": 0.0, "growth": 1.0, "tolerance": 1.5,
        "curvature": 0.0, "max_refinements": -1, "max_evaluations": 1,
        "max_extrapolation": 0.5, "sufficient_decrease": 1.0, "backtrack": 1.0,
        "reset_factor": 0.5, "momentum": 1.0, "alpha": -0.1, "betas": (0.9, 1.0), "eps": 0.0,
        "weight_decay": -1.0,
    }
    for name, value in invalid.items():
        with pytest.raises(ValueError, match=name):
            goals.GOALS(params, **{name: value})


def test_step_without_closure_is_a_clear_error():
    _, _, optimizer = setup()
    with pytest.raises(ValueError, match="needs a closure"):
        optimizer.step()


# 1. Frozen parameters, parameters without gradient, all-zero gradients.
def test_frozen_unused_and_zero_gradient_parameters_are_left_alone():
    model = small_model()
    frozen = nn.Parameter(torch.ones(3), requires_grad=False)
    unused = nn.Parameter(torch.ones(3))
    zero = nn.Parameter(torch.ones(3))
    inputs, targets = regression_problem()
    sampler = goals.BatchSampler(inputs, targets, 32)
    base = goals.make_closure(model, nn.functional.mse_loss, sampler)

    def closure():
        loss = base()
        zero.grad = torch.zeros_like(zero)
        return loss

    optimizer = goals.GOALS(list(model.parameters()) + [frozen, unused, zero], direction="adam")
    run_steps(optimizer, closure, 5)
    for param in (frozen, unused, zero):
        assert torch.equal(param, torch.ones(3))
        assert len(optimizer.state[param]) == 0


def test_all_zero_gradient_takes_no_step():
    point = nn.Parameter(torch.tensor([1.0, 2.0]))
    optimizer = goals.GOALS([point])

    def closure():
        optimizer.zero_grad()
        loss = (point * 0).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    assert torch.equal(point, torch.tensor([1.0, 2.0]))
    assert optimizer.last_record["step_size"] == 0.0


# 2. Sparse gradients.
def test_sparse_gradient_is_refused_with_the_parameter_name():
    embedding = nn.Embedding(10, 4, sparse=True)
    optimizer = goals.GOALS(list(embedding.named_parameters()))

    def closure():
        optimizer.zero_grad()
        loss = embedding(torch.tensor([1, 2])).sum()
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="'weight'.*sparse"):
        optimizer.step(closure)


# 3. Non-finite loss at a trial point.
@pytest.mark.parametrize("line_search", GRADIENT_ONLY)
def test_nonfinite_trials_are_rejected_and_parameters_end_at_a_good_point(line_search):
    """F(x) = (x - 3)^2, but infinite for x > 1: the searches must stop short of the wall."""
    point = nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    optimizer = goals.GOALS([point], line_search=line_search, initial_step=4.0,
                            max_update_norm=100.0)

    def closure():
        optimizer.zero_grad()
        loss = ((point - 3) ** 2).sum()
        if point.item() > 1:
            loss = loss * math.inf
        loss.backward()
        return loss

    total_nonfinite = 0
    for _ in range(5):
        start = point.detach().clone()
        optimizer.step(closure)
        record = optimizer.last_record
        total_nonfinite += record["nonfinite"]
        assert point.item() <= 1.0 and math.isfinite(record["loss"])
        # Exactly at start + step * direction, the direction being -g at the start.
        direction = -2 * (start - 3)
        assert torch.equal(point.detach(), start + record["step_size"] * direction)
    assert total_nonfinite > 0
    assert optimizer.state["line_search"]["step_size"] < 4.0


# 4. Step-size bounds.
def test_step_is_bounded_by_the_update_norm_and_the_hit_is_recorded():
    point = nn.Parameter(torch.zeros(4))
    optimizer = goals.GOALS([point], initial_step=1.0, max_update_norm=0.5)

    def closure():  # linear loss: no minimum along any line
        optimizer.zero_grad()
        loss = point.sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    assert optimizer.last_record["hit_max"]
    assert point.norm().item() == pytest.approx(0.5)


def test_lower_bound_hit_is_recorded():
    """The start batch says "go right"; every later batch has its minimum at the start point,
    so F'(a) > 0 for every a > 0 and GOLS-I halves down to the lower bound."""
    point = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = goals.GOALS([point], line_search="gols-i", initial_step=1.0,
                            step_size_min=1e-3)
    calls = []

    def closure():
        optimizer.zero_grad()
        loss = -point.sum() if not calls else (point**2).sum()
        calls.append(1)
        loss.backward()
        return loss

    optimizer.step(closure)
    record = optimizer.last_record
    assert record["hit_min"] and record["step_size"] < 2e-3
    assert record["refinements"] == 9  # 1 -> 2**-9 < 2e-3


# 5. Closure called while gradients are disabled.
def test_step_works_inside_no_grad():
    model, closure, optimizer = setup()
    before = flat(model)
    with torch.no_grad():
        optimizer.step(closure)
        optimizer.step(closure)
    assert not torch.equal(before, flat(model))


# 6. Several parameter groups.
def test_parameter_groups_honour_direction_options_and_refuse_line_search_options():
    torch.manual_seed(0)
    a, b = nn.Parameter(torch.randn(3)), nn.Parameter(torch.randn(3))
    optimizer = goals.GOALS([{"params": [a]}, {"params": [b], "weight_decay": 10.0}])

    def closure():
        optimizer.zero_grad()
        loss = (a**2).sum() + (b**2).sum()
        loss.backward()
        return loss

    closure()
    optimizer._capture_gradient()
    # Weight decay enters b's start gradient: 2 b + 10 b; a's stays 2 a.
    assert torch.allclose(optimizer.state[a]["gradient"], 2 * a)
    assert torch.allclose(optimizer.state[b]["gradient"], 12 * b)
    with pytest.raises(ValueError, match="line-search options must be the same"):
        goals.GOALS([{"params": [a]}, {"params": [b], "growth": 3.0}])


# 7. BatchNorm running statistics.
def test_running_statistics_hold_one_update_from_the_accepted_point():
    model, closure, optimizer = setup(batchnorm=True)
    optimizer = goals.GOALS(model.parameters(), running_stats=goals.running_stat_buffers(model))
    run_steps(optimizer, closure, 3)
    twin = copy.deepcopy(model)
    optimizer.step(closure)
    assert optimizer.last_record["evaluations"] >= 2
    # Replay: the twin moved to the accepted point sees only the last (accepted) batch.
    with torch.no_grad():
        for target, source in zip(twin.parameters(), model.parameters()):
            target.copy_(source)
    twin(closure.last_batch[0])
    bn, bn_twin = model[1], twin[1]
    assert torch.equal(bn.running_mean, bn_twin.running_mean)
    assert torch.equal(bn.running_var, bn_twin.running_var)
    assert bn.num_batches_tracked.item() == bn_twin.num_batches_tracked.item()

    # Without protection every trial leaves its mark.
    model, closure, optimizer = setup(batchnorm=True)
    run_steps(optimizer, closure, 4)
    assert model[1].num_batches_tracked.item() == closure.evaluations > 4


# 8. Randomness across the evaluations of one search.
def test_randomness_policy_is_explicit_and_seeded():
    def draws_per_step(fresh: bool) -> list[list[float]]:
        model, base, optimizer = setup(fresh_randomness=fresh, dropout=0.5)
        seen: list[float] = []

        def closure():
            seen.append(torch.rand(()).item())
            return base()

        per_step = []
        for _ in range(3):
            seen.clear()
            optimizer.step(closure)
            per_step.append(list(seen))
        return per_step

    torch.manual_seed(1)
    fixed = draws_per_step(False)
    assert all(len(set(step)) == 1 for step in fixed[1:])
    torch.manual_seed(1)
    fresh = draws_per_step(True)
    assert all(len(set(step)) == len(step) for step in fresh)
    torch.manual_seed(1)
    assert draws_per_step(True) == fresh  # same seed, same draws: nothing from the clock


# 9. state_dict round trip in the middle of a run.
@pytest.mark.parametrize("line_search", LINE_SEARCHES)
@pytest.mark.parametrize("direction", ["sgd", "adam"])
def test_state_dict_round_trip_reproduces_the_next_step_exactly(line_search, direction):
    model, closure, optimizer = setup(line_search, direction, momentum=0.0)
    run_steps(optimizer, closure, 7)
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_sampler = copy.deepcopy(closure.sampler.state_dict())
    saved_rng = torch.random.get_rng_state()
    run_steps(optimizer, closure, 2)
    expected = flat(model)

    def resume(load_optimizer: bool) -> torch.Tensor:
        fresh_model, fresh_closure, fresh_optimizer = setup(line_search, direction)
        fresh_model.load_state_dict(saved_model)
        if load_optimizer:
            fresh_optimizer.load_state_dict(saved_optimizer)
        fresh_closure.sampler.load_state_dict(saved_sampler)
        torch.random.set_rng_state(saved_rng)
        run_steps(fresh_optimizer, fresh_closure, 2)
        return flat(fresh_model)

    assert torch.equal(resume(load_optimizer=True), expected)
    assert not torch.equal(resume(load_optimizer=False), expected)

    status = optimizer.state_dict()["state"]["line_search"]
    assert all(not isinstance(value, torch.Tensor) for value in status.values())
    assert isinstance(status["step_size"], float)


def test_same_seed_same_trajectory():
    trajectories = []
    for _ in range(2):
        model, closure, optimizer = setup("goals", "adam", seed=3)
        trajectories.append([r["step_size"] for r in run_steps(optimizer, closure, 10)])
    assert trajectories[0] == trajectories[1]


# 10. One host synchronisation per line-search decision.
def test_host_synchronisations_do_not_scale_with_parameter_tensors(monkeypatch):
    counts = {"sync": 0}
    for method in ("tolist", "item", "__float__", "__bool__"):
        original = getattr(torch.Tensor, method)

        def counting(self, *args, _original=original, **kwargs):
            counts["sync"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, counting)

    def syncs_per_evaluation(depth: int) -> float:
        torch.manual_seed(0)
        layers = [nn.Linear(6, 6) for _ in range(depth)] + [nn.Linear(6, 1)]
        model = nn.Sequential(*layers)
        inputs, targets = regression_problem()
        closure = goals.make_closure(model, nn.functional.mse_loss,
                                     goals.BatchSampler(inputs, targets, 32))
        optimizer = goals.GOALS(model.parameters(), initial_step=0.05)
        optimizer.step(closure)
        counts["sync"] = 0
        evaluations = 0
        for _ in range(5):
            optimizer.step(closure)
            evaluations += optimizer.last_record["evaluations"]
        # One per evaluation, plus one for F'(0) and one to capture the new start gradient.
        return counts["sync"] / 5, evaluations / 5

    shallow_syncs, shallow_evaluations = syncs_per_evaluation(1)
    deep_syncs, deep_evaluations = syncs_per_evaluation(12)
    assert shallow_syncs <= shallow_evaluations + 2
    assert deep_syncs <= deep_evaluations + 2


# 11. Several processes.
def test_several_processes_are_refused(monkeypatch):
    _, closure, optimizer = setup()
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    with pytest.raises(RuntimeError, match="several processes"):
        optimizer.step(closure)


# 12. Mixed precision.
def test_float16_parameters_are_refused_and_bfloat16_autocast_works():
    with pytest.raises(ValueError, match="float16 parameters are not supported"):
        goals.GOALS([nn.Parameter(torch.zeros(2, dtype=torch.float16))])
    model = small_model()
    inputs, targets = regression_problem()
    closure = goals.make_closure(model, nn.functional.mse_loss,
                                 goals.BatchSampler(inputs, targets, 32),
                                 autocast_dtype=torch.bfloat16)
    optimizer = goals.GOALS(model.parameters())
    records = run_steps(optimizer, closure, 10)
    assert all(math.isfinite(r["loss"]) for r in records)
    assert records[-1]["step_size"] > 0


# 13. The logged step is the applied one; evaluations are counted per step.
@pytest.mark.parametrize("line_search", LINE_SEARCHES)
def test_logged_step_is_the_applied_step(line_search):
    model, closure, optimizer = setup(line_search, "sgd")
    run_steps(optimizer, closure, 3)
    if line_search == "armijo":
        closure.resample()
    gradient = optimizer.state[next(model.parameters())]["gradient"].clone()
    start = next(model.parameters()).detach().clone()
    if line_search == "armijo":  # Armijo evaluates its start gradient on the step's batch
        closure()
        gradient = next(model.parameters()).grad.clone()
    evaluations_before = closure.evaluations
    optimizer.step(closure)
    record = optimizer.last_record
    moved = next(model.parameters()).detach() - start
    assert torch.allclose(moved, -record["step_size"] * gradient, rtol=1e-5, atol=1e-7)
    expected = closure.evaluations - evaluations_before
    assert record["evaluations"] == expected


def test_gradient_reuse_costs_no_evaluation_at_the_start():
    _, closure, optimizer = setup("goals")
    optimizer.step(closure)
    first = optimizer.last_record["evaluations"]
    records = run_steps(optimizer, closure, 30)
    # The first step pays for its start gradient; afterwards about 2 FEs per step.
    assert first >= 3
    median = sorted(r["evaluations"] for r in records)[len(records) // 2]
    assert median == 2


def test_numbers_given_as_strings_are_a_clear_type_error():
    params = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(TypeError, match="initial_step must be a number.*write 1.0e-3"):
        goals.GOALS(params, initial_step="1e-3")
    with pytest.raises(TypeError, match="betas must be a number"):
        goals.GOALS(params, betas=(0.9, None))


def test_closure_without_backward_is_a_clear_error():
    model = small_model()
    inputs, targets = regression_problem()
    optimizer = goals.GOALS(model.parameters())

    def closure():
        optimizer.zero_grad()
        return nn.functional.mse_loss(model(inputs), targets)

    with pytest.raises(ValueError, match="must call loss.backward"):
        optimizer.step(closure)


def test_armijo_warns_once_when_the_batch_is_not_resampled(caplog):
    _, closure, optimizer = setup("armijo")
    closure.resample()
    with caplog.at_level("WARNING", logger="goals.optimizer"):
        optimizer.step(closure)
        assert "resample" not in caplog.text
        optimizer.step(closure)
        optimizer.step(closure)
    assert caplog.text.count("call closure.resample()") == 1


def test_nonfinite_start_point_takes_no_step_and_warns(caplog):
    point = nn.Parameter(torch.ones(2))
    optimizer = goals.GOALS([point])

    def closure():
        optimizer.zero_grad()
        loss = (point * math.nan).sum()
        loss.backward()
        return loss

    with caplog.at_level("WARNING", logger="goals.optimizer"):
        optimizer.step(closure)
    assert torch.equal(point.detach(), torch.ones(2))
    assert optimizer.last_record["step_size"] == 0.0
    assert "not finite" in caplog.text
