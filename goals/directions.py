"""Search directions: the SGD, RMSprop and Adam update rules with the learning rate taken out.

Each rule writes a descent direction ``d`` into preallocated buffers and updates its moments once,
with the gradient ``g`` at the current point (never with gradients from trial points of a line
search). With ``lr = a`` from a line search these give GOALS-SGD, GOALS-RMSprop and GOALS-Adam.

- SGD: ``d = -g``; with momentum ``mu``: ``b <- mu b + g``, ``d = -b``.
- RMSprop: ``v <- rho v + (1 - rho) g^2``, ``d = -g / (sqrt(v) + eps)`` (torch's defaults).
- Adam: ``m <- beta1 m + (1 - beta1) g``, ``v <- beta2 v + (1 - beta2) g^2``,
  ``d = -m_hat / (sqrt(v_hat) + eps)`` with bias-corrected ``m_hat``, ``v_hat``.

All rules work on lists of tensors with ``torch._foreach_*`` kernels and allocate nothing of
parameter size per call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class DirectionRule:
    """A direction's name, its per-parameter state buffers and its default hyperparameters."""

    name: str
    buffers: tuple[str, ...]
    defaults: dict


DIRECTION_RULES: dict[str, DirectionRule] = {
    "sgd": DirectionRule("sgd", ("momentum_buffer",), {"momentum": 0.0}),
    "rmsprop": DirectionRule("rmsprop", ("square_avg",), {"alpha": 0.99, "eps": 1e-8}),
    "adam": DirectionRule(
        "adam", ("exp_avg", "exp_avg_sq"), {"betas": (0.9, 0.999), "eps": 1e-8}
    ),
}


def sgd_direction_(
    directions: list[Tensor], grads: list[Tensor], momentum_buffers: list[Tensor],
    *, momentum: float, first_step: bool,
) -> None:
    """Write the SGD direction ``-g`` (or ``-b`` with heavy-ball momentum) into ``directions``."""
    if momentum > 0:
        # Momentum: the buffer starts as the first gradient, then b <- mu b + g.
        if first_step:
            torch._foreach_copy_(momentum_buffers, grads)
        else:
            torch._foreach_mul_(momentum_buffers, momentum)
            torch._foreach_add_(momentum_buffers, grads)
        source = momentum_buffers
    else:
        source = grads
    torch._foreach_copy_(directions, source)
    torch._foreach_neg_(directions)


def rmsprop_direction_(
    directions: list[Tensor], grads: list[Tensor], square_avgs: list[Tensor],
    *, alpha: float, eps: float,
) -> None:
    """Write the RMSprop direction ``-g / (sqrt(v) + eps)`` into ``directions``."""
    torch._foreach_mul_(square_avgs, alpha)
    torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)

    # d = -g / (sqrt(v) + eps), built in place in the direction buffers.
    torch._foreach_copy_(directions, square_avgs)
    torch._foreach_sqrt_(directions)
    torch._foreach_add_(directions, eps)
    torch._foreach_reciprocal_(directions)
    torch._foreach_mul_(directions, grads)
    torch._foreach_neg_(directions)


def adam_direction_(
    directions: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor], *, step: int, betas: tuple[float, float], eps: float,
) -> None:
    """Write the Adam direction ``-m_hat / (sqrt(v_hat) + eps)`` into ``directions``.

    ``step`` is the 1-based count of moment updates, used for the bias corrections.
    """
    beta1, beta2 = betas
    torch._foreach_mul_(exp_avgs, beta1)
    torch._foreach_add_(exp_avgs, grads, alpha=1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    correction1 = 1 - beta1**step
    correction2 = 1 - beta2**step

    # d = -(m / c1) / (sqrt(v / c2) + eps), built in place in the direction buffers.
    torch._foreach_copy_(directions, exp_avg_sqs)
    torch._foreach_sqrt_(directions)
    torch._foreach_div_(directions, correction2**0.5)
    torch._foreach_add_(directions, eps)
    torch._foreach_reciprocal_(directions)
    torch._foreach_mul_(directions, exp_avgs)
    torch._foreach_mul_(directions, -1.0 / correction1)


def compute_direction_(
    name: str, directions: list[Tensor], grads: list[Tensor], buffers: dict[str, list[Tensor]],
    options: dict, step: int,
) -> None:
    """Dispatch to the rule ``name`` (``"sgd"``, ``"rmsprop"`` or ``"adam"``).

    Args:
        name: the direction's name.
        directions: output buffers, one per parameter.
        grads: gradients at the current point.
        buffers: the rule's state lists, keyed by the names in ``DIRECTION_RULES[name].buffers``.
        options: the parameter group holding the rule's hyperparameters.
        step: 1-based count of direction updates of these parameters.
    """
    if name == "sgd":
        sgd_direction_(directions, grads, buffers.get("momentum_buffer", []),
                       momentum=options["momentum"], first_step=step == 1)
    elif name == "rmsprop":
        rmsprop_direction_(directions, grads, buffers["square_avg"],
                           alpha=options["alpha"], eps=options["eps"])
    elif name == "adam":
        adam_direction_(directions, grads, buffers["exp_avg"], buffers["exp_avg_sq"],
                        step=step, betas=tuple(options["betas"]), eps=options["eps"])
    else:
        raise ValueError(f"unknown direction {name!r}; choose one of {sorted(DIRECTION_RULES)}")
