"""GOALS: gradient-only approximations for line searches, as a PyTorch optimizer.

The companion of Y. Chae, D. N. Wilke, D. Kafka, "GOALS: Gradient-Only Approximations for Line
Searches Towards Robust and Consistent Training of Deep Neural Networks" (arXiv:2105.10915).

    import goals
    optimizer = goals.GOALS(model.parameters(), direction="adam", line_search="goals")
    closure = goals.make_closure(model, loss_fn, goals.BatchSampler(x, y, batch_size=128))
    optimizer.step(closure)
"""

from goals.closures import (
    BatchSampler,
    LoaderSampler,
    MiniBatchClosure,
    make_closure,
    running_stat_buffers,
)
from goals.line_search import (
    SearchResult,
    armijo_search,
    goals_search,
    gols_back_search,
    gols_i_search,
    gos_ls_search,
)
from goals.optimizer import GOALS, LINE_SEARCHES

__all__ = [
    "GOALS",
    "LINE_SEARCHES",
    "BatchSampler",
    "LoaderSampler",
    "MiniBatchClosure",
    "SearchResult",
    "armijo_search",
    "gols_back_search",
    "gols_i_search",
    "goals_search",
    "gos_ls_search",
    "make_closure",
    "running_stat_buffers",
]
__version__ = "0.1.0"
