"""Closures and samplers for dynamic and static MBSS."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import goals

torch.set_num_threads(1)


def data(n: int = 40):
    inputs = torch.arange(n, dtype=torch.float32).reshape(n, 1)
    return inputs, torch.arange(n)


def test_batches_are_fresh_and_cover_the_data_once_per_pass():
    inputs, targets = data()
    sampler = goals.BatchSampler(inputs, targets, 8, seed=0)
    seen = torch.cat([sampler.sample()[1] for _ in range(5)])
    assert sorted(seen.tolist()) == list(range(40))
    again = goals.BatchSampler(inputs, targets, 8, seed=0)
    assert torch.equal(torch.cat([again.sample()[1] for _ in range(5)]), seen)


def test_dynamic_closure_draws_a_batch_per_call_and_static_holds_it():
    inputs, targets = data()
    model = nn.Linear(1, 1)
    loss_fn = lambda out, y: ((out.squeeze(1) - y.float()) ** 2).mean()  # noqa: E731
    dynamic = goals.make_closure(model, loss_fn, goals.BatchSampler(inputs, targets, 8))
    dynamic()
    first = dynamic.last_batch[1].clone()
    dynamic()
    assert not torch.equal(first, dynamic.last_batch[1])
    static = goals.make_closure(model, loss_fn, goals.BatchSampler(inputs, targets, 8),
                                mbss="static")
    static()
    held = static.last_batch[1].clone()
    static(backward=False)
    assert torch.equal(held, static.last_batch[1])
    static.resample()
    assert not torch.equal(held, static.last_batch[1])
    assert (static.evaluations, static.forward_evaluations) == (1, 1)


def test_closure_zeroes_gradients_before_backward():
    inputs, targets = data()
    model = nn.Linear(1, 1)
    closure = goals.make_closure(model, lambda out, y: out.sum(),
                                 goals.BatchSampler(inputs, targets, 8), mbss="static")
    closure()
    once = model.weight.grad.clone()
    closure()
    assert torch.equal(model.weight.grad, once)


def test_tensor_dataset_and_data_loader_samplers():
    inputs, targets = data()
    dataset = torch.utils.data.TensorDataset(inputs, targets)
    sampler = goals.BatchSampler.from_dataset(dataset, 10, seed=1)
    assert sampler.sample()[0].shape == (10, 1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    loader_sampler = goals.LoaderSampler(loader)
    sizes = [len(loader_sampler.sample()[1]) for _ in range(4)]
    assert sizes == [16, 16, 8, 16]  # a new pass starts after the short last batch
    with pytest.raises(TypeError, match="TensorDataset"):
        goals.BatchSampler.from_dataset([1, 2, 3], 2)


def test_bad_sampler_and_closure_arguments_are_clear_errors():
    inputs, targets = data()
    with pytest.raises(ValueError, match="batch_size"):
        goals.BatchSampler(inputs, targets, 0)
    with pytest.raises(ValueError, match="equal length"):
        goals.BatchSampler(inputs, targets[:5], 2)
    with pytest.raises(ValueError, match="mbss"):
        goals.make_closure(nn.Linear(1, 1), nn.functional.mse_loss,
                           goals.BatchSampler(inputs, targets, 2), mbss="sometimes")


def test_armijo_refuses_a_dynamic_closure():
    inputs, targets = data()
    model = nn.Linear(1, 1)
    closure = goals.make_closure(model, lambda out, y: out.pow(2).mean(),
                                 goals.BatchSampler(inputs, targets, 8))
    optimizer = goals.GOALS(model.parameters(), line_search="armijo")
    with pytest.raises(ValueError, match="mbss='static'"):
        optimizer.step(closure)
