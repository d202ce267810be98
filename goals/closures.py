"""Closures for dynamic and static mini-batch sub-sampling (MBSS).

A closure is what :meth:`goals.GOALS.step` calls for each function evaluation (FE). Two policies:

- **dynamic MBSS**: every call draws a fresh mini-batch. This is the setting of GOALS: the loss
  along a line then jumps between batches and only the sign of the directional derivative is
  trusted.
- **static MBSS**: one batch is held for all calls until :meth:`MiniBatchClosure.resample`; the
  loss along a line is smooth but biased towards that batch. SLS-Armijo needs it.

Example::

    sampler = goals.BatchSampler(x_train, y_train, batch_size=128, seed=0)
    closure = goals.make_closure(model, nn.functional.cross_entropy, sampler)
    optimizer = goals.GOALS(model.parameters(), direction="adam")
    for _ in range(100):
        optimizer.step(closure)
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable

import torch
from torch import Tensor, nn

Transform = Callable[[Tensor, torch.Generator], Tensor]


class BatchSampler:
    """Draws mini-batches from tensors that already live on the training device.

    Batches follow a shuffled pass over the data (without replacement within a pass; a new
    permutation starts when one runs out), drawn with a private ``torch.Generator`` so the batch
    sequence depends only on ``seed`` and not on other randomness such as dropout.

    Args:
        inputs: all inputs, first dimension = examples.
        targets: all targets, same first dimension.
        batch_size: examples per batch.
        seed: seed of the sampler's generator.
        transform: optional ``(batch, generator) -> batch`` applied to every drawn batch on the
            device (data augmentation).
    """

    def __init__(self, inputs: Tensor, targets: Tensor, batch_size: int, seed: int = 0,
                 transform: Transform | None = None) -> None:
        if len(inputs) != len(targets):
            raise ValueError(
                f"inputs have {len(inputs)} examples but targets have {len(targets)}; "
                "pass tensors of equal length"
            )
        if not 0 < batch_size <= len(inputs):
            raise ValueError(
                f"batch_size must lie in [1, {len(inputs)}] (the number of examples), "
                f"got {batch_size}"
            )
        self.inputs, self.targets = inputs, targets
        self.batch_size = int(batch_size)
        self.transform = transform
        self.generator = torch.Generator(device=inputs.device)
        self.generator.manual_seed(int(seed))
        self._order = torch.randperm(len(inputs), generator=self.generator, device=inputs.device)
        self._position = 0
        self.batches_drawn = 0

    def sample(self) -> tuple[Tensor, Tensor]:
        """Return the next fresh batch ``(inputs, targets)``."""
        if self._position + self.batch_size > len(self._order):
            self._order = torch.randperm(len(self.inputs), generator=self.generator,
                                         device=self.inputs.device)
            self._position = 0
        index = self._order[self._position:self._position + self.batch_size]
        self._position += self.batch_size
        self.batches_drawn += 1
        batch = self.inputs[index]
        if self.transform is not None:
            batch = self.transform(batch, self.generator)
        return batch, self.targets[index]

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint of the generator and the position in the current pass."""
        return {"generator": self.generator.get_state(), "order": self._order.clone(),
                "position": self._position, "batches_drawn": self.batches_drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint from :meth:`state_dict`."""
        self.generator.set_state(state["generator"])
        self._order = state["order"].to(self.inputs.device).clone()
        self._position = int(state["position"])
        self.batches_drawn = int(state["batches_drawn"])


    @classmethod
    def from_dataset(cls, dataset: torch.utils.data.TensorDataset, batch_size: int,
                     seed: int = 0, device: str | torch.device | None = None,
                     transform: Transform | None = None) -> "BatchSampler":
        """Sampler over a ``TensorDataset`` of ``(inputs, targets)``, moved to ``device``."""
        if not isinstance(dataset, torch.utils.data.TensorDataset) or len(dataset.tensors) != 2:
            raise TypeError(
                "from_dataset needs a torch.utils.data.TensorDataset of (inputs, targets); "
                "for any other dataset wrap a DataLoader with goals.LoaderSampler"
            )
        inputs, targets = (tensor.to(device) if device is not None else tensor
                           for tensor in dataset.tensors)
        return cls(inputs, targets, batch_size, seed=seed, transform=transform)


class LoaderSampler:
    """Draws batches from a ``torch.utils.data.DataLoader``, starting a new pass when one ends.

    Use it for data that does not fit on the device; pass ``shuffle=True`` and a seeded
    ``generator`` to the loader for repeatable batches. Each :meth:`sample` is a fresh batch, so a
    closure over it gives dynamic MBSS.

    Args:
        loader: yields ``(inputs, targets)`` pairs.
        device: where batches are moved (``non_blocking`` copies).
    """

    def __init__(self, loader: torch.utils.data.DataLoader,
                 device: str | torch.device = "cpu") -> None:
        self.loader, self.device = loader, torch.device(device)
        self._iterator = iter(loader)
        self.batches_drawn = 0

    def sample(self) -> tuple[Tensor, Tensor]:
        """Return the next batch ``(inputs, targets)`` on the device."""
        try:
            inputs, targets = next(self._iterator)
        except StopIteration:
            self._iterator = iter(self.loader)
            inputs, targets = next(self._iterator)
        self.batches_drawn += 1
        return (inputs.to(self.device, non_blocking=True),
                targets.to(self.device, non_blocking=True))


class MiniBatchClosure:
    """The closure of :func:`make_closure`; see there.

    Attributes:
        evaluations: calls with ``backward=True`` (FEs).
        forward_evaluations: calls with ``backward=False`` (forward-only).
        last_batch: the ``(inputs, targets)`` of the last call.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 sampler: BatchSampler | LoaderSampler, mbss: str = "dynamic",
                 autocast_dtype: torch.dtype | None = None) -> None:
        if mbss not in ("dynamic", "static"):
            raise ValueError(f"mbss={mbss!r}; choose 'dynamic' (fresh batch every call) or "
                             "'static' (one batch until resample())")
        self.model, self.loss_fn, self.sampler, self.mbss = model, loss_fn, sampler, mbss
        self.autocast_dtype = autocast_dtype
        self.evaluations = 0
        self.forward_evaluations = 0
        self.last_batch: tuple[Tensor, Tensor] | None = None

    def resample(self) -> None:
        """Draw a new batch now (static MBSS: call before each optimizer step)."""
        self.last_batch = self.sampler.sample()

    def __call__(self, backward: bool = True) -> Tensor:
        """Zero the gradients, evaluate the loss, backpropagate (unless ``backward=False``).

        Returns:
            The detached loss.
        """
        if self.mbss == "dynamic" or self.last_batch is None:
            self.resample()
        inputs, targets = self.last_batch
        device_type = inputs.device.type
        autocast = (torch.autocast(device_type, dtype=self.autocast_dtype)
                    if self.autocast_dtype is not None else nullcontext())
        if backward:
            self.model.zero_grad(set_to_none=True)
            with torch.enable_grad(), autocast:
                loss = self.loss_fn(self.model(inputs), targets)
            loss.backward()
            self.evaluations += 1
        else:
            with torch.no_grad(), autocast:
                loss = self.loss_fn(self.model(inputs), targets)
            self.forward_evaluations += 1
        return loss.detach()


def make_closure(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 sampler: BatchSampler | LoaderSampler, mbss: str = "dynamic",
                 autocast_dtype: torch.dtype | None = None) -> MiniBatchClosure:
    """Build a closure for :meth:`goals.GOALS.step` (or any ``torch.optim`` optimizer).

    The closure zeroes the model's gradients, evaluates ``loss_fn(model(x), y)`` on a batch from
    ``sampler`` and calls ``backward()``: who zeroes and who backpropagates is the closure, as in
    PyTorch's contract. The model stays in whatever mode it is in (use ``model.train()``).

    Args:
        model: the network.
        loss_fn: ``(outputs, targets) -> scalar loss``.
        sampler: where batches come from: a :class:`BatchSampler` over tensors on the device
            (fastest), or a :class:`LoaderSampler` over a ``DataLoader``.
        mbss: ``"dynamic"`` (fresh batch on every call) or ``"static"`` (same batch until
            ``closure.resample()``).
        autocast_dtype: e.g. ``torch.bfloat16`` to run the forward pass under autocast.
    """
    return MiniBatchClosure(model, loss_fn, sampler, mbss=mbss, autocast_dtype=autocast_dtype)


def running_stat_buffers(model: nn.Module) -> list[Tensor]:
    """BatchNorm running means, variances and batch counters of ``model``.

    Pass them as ``GOALS(..., running_stats=running_stat_buffers(model))`` so rejected trial
    evaluations leave no trace in them.
    """
    buffers = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            buffers += [b for b in (module.running_mean, module.running_var,
                                    module.num_batches_tracked) if b is not None]
    return buffers
